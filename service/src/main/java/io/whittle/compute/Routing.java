package io.whittle.compute;

/**
 * The routing decision for T tokens with top-k experts each: {@code experts[t*k + i]} is the i-th selected expert
 * of token t (in descending probability, ties to the lower index) and {@code weights[t*k + i]} the weight the
 * model's forward multiplies its output by (after renormalisation where the family renormalises).
 */
public record Routing(int tokens, int topK, int numExperts, int[] experts, float[] weights) {

    /**
     * The tokens routed to each expert (index = expert), in increasing token order with their weights, built in one
     * pass over the routing.
     */
    public ExpertRows[] byExpert() {
        int[] count = new int[numExperts];
        for (int e : experts) {
            count[e]++;
        }
        int[][] rows = new int[numExperts][];
        float[][] w = new float[numExperts][];
        for (int e = 0; e < numExperts; e++) {
            rows[e] = new int[count[e]];
            w[e] = new float[count[e]];
        }
        int[] fill = new int[numExperts];
        for (int i = 0; i < experts.length; i++) {
            int e = experts[i];
            rows[e][fill[e]] = i / topK;
            w[e][fill[e]] = weights[i];
            fill[e]++;
        }
        ExpertRows[] out = new ExpertRows[numExperts];
        for (int e = 0; e < numExperts; e++) {
            out[e] = new ExpertRows(e, rows[e], w[e]);
        }
        return out;
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
