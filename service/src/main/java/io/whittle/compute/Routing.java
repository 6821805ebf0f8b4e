package io.whittle.compute;

/**
 * The routing decision for T tokens with top-k experts each: {@code experts[t*k + i]} is the i-th selected expert
 * of token t (in descending probability, ties to the lower index) and {@code weights[t*k + i]} the weight the
 * model's forward multiplies its output by (after renormalisation where the family renormalises).
 */
public record Routing(int tokens, int topK, int numExperts, int[] experts, float[] weights) {

    /** Tokens routed to {@code expert}, in increasing token order, with their weights. */
    public ExpertRows rowsOf(int expert) {
        int count = 0;
        for (int i = 0; i < experts.length; i++) {
            if (experts[i] == expert) {
                count++;
            }
        }
        int[] rows = new int[count];
        float[] w = new float[count];
        int n = 0;
        for (int i = 0; i < experts.length; i++) {
            if (experts[i] == expert) {
                rows[n] = i / topK;
                w[n] = weights[i];
                n++;
            }
        }
        return new ExpertRows(expert, rows, w);
    }

    /** The tokens one expert receives and the routing weight of each. */
    public record ExpertRows(int expert, int[] rows, float[] weights) {
        public int count() {
            return rows.length;
        }
    }

    /** Dense [T, E] routing weights (0 where not routed). */
    public float[] denseWeights() {
        float[] dense = new float[tokens * numExperts];
        for (int i = 0; i < experts.length; i++) {
            dense[(i / topK) * numExperts + experts[i]] += weights[i];
        }
        return dense;
    }
}
