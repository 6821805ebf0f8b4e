package io.whittle.compute;

import io.whittle.tensor.FloatTensor;
import io.whittle.tensor.Tensor;

/**
 * Shared pieces of {@link Backend#microExpertEnergy}: argument checks, the chunk size, and the host epilogue that
 * turns gate and up activations into squared micro-expert coefficients.
 */
public final class MicroExpertEnergy {

    /** Upper bound on the elements of one [rows, f] activation chunk (16 MiB of fp32 per buffer). */
    static final int CHUNK_ELEMENTS = 1 << 22;
    /** Rows per chunk at most; enough for BLAS to run at full rate. */
    static final int MAX_CHUNK_ROWS = 2048;

    private MicroExpertEnergy() {
    }

    /** Throws {@link IllegalArgumentException} naming the shapes when the arguments do not fit together. */
    public static void check(Tensor x, Tensor wGate, Tensor wUp, float[] routingWeight, double[] sumSq, double[] maxSq) {
        int f = wGate.rows();
        if (wGate.cols() != x.cols() || wUp.rows() != f || wUp.cols() != x.cols()) {
            throw new IllegalArgumentException("microExpertEnergy shape mismatch: x " + x.shape() + ", gate " + wGate.shape()
                    + ", up " + wUp.shape());
        }
        if (routingWeight.length != x.rows()) {
            throw new IllegalArgumentException("microExpertEnergy: " + routingWeight.length + " routing weights for "
                    + x.rows() + " rows");
        }
        if (sumSq.length != f || maxSq.length != f) {
            throw new IllegalArgumentException("microExpertEnergy: accumulators of length " + sumSq.length + " and "
                    + maxSq.length + " for " + f + " channels");
        }
    }

    /** Rows per chunk so that one [rows, f] buffer stays under {@link #CHUNK_ELEMENTS}. */
    public static int chunkRows(int n, int f) {
        int rows = Math.max(1, Math.min(MAX_CHUNK_ROWS, CHUNK_ELEMENTS / Math.max(1, f)));
        return Math.max(1, Math.min(rows, n));
    }

    /**
     * For rows 0..m-1 of the chunk (global row {@code row0 + r}) and channels [c0, c1): phi = A * silu(g) * u in
     * fp64, {@code sumSq[c] += phi^2}, {@code maxSq[c] = max(maxSq[c], phi^2)}. Rows are visited in order.
     */
    public static void accumulate(FloatTensor gate, FloatTensor up, int m, int f, float[] routingWeight, int row0, int c0,
                                  int c1, double[] sumSq, double[] maxSq) {
        int len = c1 - c0;
        float[] g = new float[len];
        float[] u = new float[len];
        double[] sum = new double[len];
        double[] max = new double[len];
        System.arraycopy(sumSq, c0, sum, 0, len);
        System.arraycopy(maxSq, c0, max, 0, len);
        for (int r = 0; r < m; r++) {
            double a = routingWeight[row0 + r];
            if (a == 0.0) {
                continue; // phi = 0 adds nothing to either accumulator (both start at 0 and only grow)
            }
            gate.copyTo((long) r * f + c0, g, 0, len);
            up.copyTo((long) r * f + c0, u, 0, len);
            for (int j = 0; j < len; j++) {
                double gj = g[j];
                double phi = a * (gj / (1.0 + Math.exp(-gj))) * u[j];
                double sq = phi * phi;
                sum[j] += sq;
                if (sq > max[j]) {
                    max[j] = sq;
                }
            }
        }
        System.arraycopy(sum, 0, sumSq, c0, len);
        System.arraycopy(max, 0, maxSq, c0, len);
    }
}
