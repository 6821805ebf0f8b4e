package io.whittle.methods.wgsef;

import java.util.Random;

/** Seeded synthetic calibration data for the solver tests. */
final class Calibration {

    private Calibration() {
    }

    /**
     * n x dim inputs with correlated features: a low-rank latent part (rank dim / 4) plus noise, with per-feature
     * scales spread over about an order of magnitude, like LLM activations.
     */
    static float[] correlatedInputs(Random rnd, int n, int dim) {
        int rank = Math.max(2, dim / 4);
        double[] mix = new double[rank * dim];
        for (int i = 0; i < mix.length; i++) {
            mix[i] = rnd.nextGaussian() / Math.sqrt(rank);
        }
        double[] scale = new double[dim];
        for (int c = 0; c < dim; c++) {
            scale[c] = Math.exp(0.75 * rnd.nextGaussian());
        }
        float[] x = new float[n * dim];
        double[] z = new double[rank];
        for (int i = 0; i < n; i++) {
            for (int f = 0; f < rank; f++) {
                z[f] = rnd.nextGaussian();
            }
            for (int c = 0; c < dim; c++) {
                double v = 0.3 * rnd.nextGaussian();
                for (int f = 0; f < rank; f++) {
                    v += z[f] * mix[f * dim + c];
                }
                x[i * dim + c] = (float) (scale[c] * v);
            }
        }
        return x;
    }

    static float[] gaussian(Random rnd, int n) {
        float[] w = new float[n];
        for (int i = 0; i < n; i++) {
            w[i] = (float) rnd.nextGaussian();
        }
        return w;
    }

    /** ||X (W - W')^T||_F / ||X W^T||_F computed directly from X (n x in), W and W' (out x in). */
    static double relativeError(float[] x, int n, int in, float[] w, float[] wp, int out) {
        double num = 0;
        double den = 0;
        for (int i = 0; i < n; i++) {
            for (int o = 0; o < out; o++) {
                double a = 0;
                double b = 0;
                for (int c = 0; c < in; c++) {
                    double xv = x[i * in + c];
                    a += xv * w[o * in + c];
                    b += xv * (w[o * in + c] - wp[o * in + c]);
                }
                den += a * a;
                num += b * b;
            }
        }
        return Math.sqrt(num / den);
    }
}
