package io.whittle.methods.camera;

/**
 * What the scoring pass measured for one MoE layer, in pool order ({@link MoePool}): per micro-expert the sum and
 * the maximum over calibration tokens of phi_j(t)^2 and the squared norm of its down column, and per routed expert
 * the number of tokens routed to it.
 */
public record LayerEnergy(MoePool pool, double[] sumSq, double[] maxSq, double[] downNormSq, long[] tokensPerExpert,
                          long tokens) {

    /**
     * CAMERA's energy {@code E_j = [(1 - alpha) * sum_t phi_j(t)^2 + alpha * max_t phi_j(t)^2] * ||w_j^down||^2}, in
     * fp64, pool order.
     */
    public double[] energy(double alpha) {
        double[] e = new double[sumSq.length];
        for (int j = 0; j < e.length; j++) {
            e[j] = ((1.0 - alpha) * sumSq[j] + alpha * maxSq[j]) * downNormSq[j];
        }
        return e;
    }

    /** Routed experts that received no calibration token (their energies are 0). */
    public int expertsWithoutTokens() {
        int n = 0;
        for (long t : tokensPerExpert) {
            if (t == 0) {
                n++;
            }
        }
        return n;
    }
}
