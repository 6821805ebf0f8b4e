package io.whittle.methods.camera.quant;

import io.whittle.tensor.FloatTensor;
import io.whittle.tensor.Shape;
import java.util.Random;

/** Seeded inputs and error measures shared by the quantization tests. */
final class QuantTestData {

    private QuantTestData() {
    }

    /** Gaussian weights [rows, cols] with a few larger outliers, like trained projections. */
    static float[] weights(Random rnd, int rows, int cols) {
        float[] w = new float[rows * cols];
        for (int i = 0; i < w.length; i++) {
            w[i] = (float) (rnd.nextGaussian() * 0.02);
            if (rnd.nextInt(200) == 0) {
                w[i] *= 6;
            }
        }
        return w;
    }

    /**
     * Correlated activations [tokens, dim]: a low-rank shared component plus noise, with per-channel scales that
     * vary over an order of magnitude; the setting in which GPTQ's error feedback pays off.
     */
    static float[] correlatedInputs(Random rnd, int tokens, int dim) {
        int rank = Math.max(2, dim / 8);
        double[][] mix = new double[rank][dim];
        for (double[] m : mix) {
            for (int c = 0; c < dim; c++) {
                m[c] = rnd.nextGaussian();
            }
        }
        double[] channelScale = new double[dim];
        for (int c = 0; c < dim; c++) {
            channelScale[c] = Math.exp(rnd.nextGaussian() * 0.8);
        }
        float[] x = new float[tokens * dim];
        double[] z = new double[rank];
        for (int t = 0; t < tokens; t++) {
            for (int k = 0; k < rank; k++) {
                z[k] = rnd.nextGaussian();
            }
            for (int c = 0; c < dim; c++) {
                double v = 0.3 * rnd.nextGaussian();
                for (int k = 0; k < rank; k++) {
                    v += z[k] * mix[k][c];
                }
                x[t * dim + c] = (float) (v * channelScale[c] / Math.sqrt(rank));
            }
        }
        return x;
    }

    static FloatTensor tensor(float[] values, int rows, int cols) {
        return FloatTensor.of(Shape.of(rows, cols), values);
    }

    /** ||X (W - Wq)^T|| / ||X W^T|| in double. */
    static double relativeOutputError(float[] x, int tokens, float[] w, float[] wq, int rows, int cols) {
        double num = 0;
        double den = 0;
        for (int t = 0; t < tokens; t++) {
            for (int r = 0; r < rows; r++) {
                double y = 0;
                double dy = 0;
                for (int c = 0; c < cols; c++) {
                    double xv = x[t * cols + c];
                    y += xv * w[r * cols + c];
                    dy += xv * ((double) w[r * cols + c] - wq[r * cols + c]);
                }
                num += dy * dy;
                den += y * y;
            }
        }
        return Math.sqrt(num / den);
    }

    static float[] dequantized(QuantizedMatrix m) {
        try (FloatTensor t = m.dequantize()) {
            return t.toArray();
        }
    }
}
