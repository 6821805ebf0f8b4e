package io.whittle.methods.camera.quant;

import io.whittle.tensor.FloatTensor;
import io.whittle.tensor.HostAllocator;
import io.whittle.tensor.Shape;
import org.bytedeco.javacpp.DoublePointer;
import org.bytedeco.openblas.global.openblas;

/**
 * GPTQ (Frantar et al. 2023, {@code gptq.py: fasterquant}) with per-cell widths from a {@link QuantLayout}.
 *
 * <p>Factorization ({@link #factor}), in double precision with LAPACK: dead columns (diag(H) == 0) get
 * H[i,i] = 1; damping {@code damp * mean(diag H)} is added to the diagonal; the result is the upper Cholesky
 * factor U of the inverse, (H + damping)^-1 = U^T U, which the reference computes as {@code cholesky,
 * cholesky_inverse, cholesky(upper=True)}; here it comes from one Cholesky factorization of the index-reversed
 * matrix and one triangular inverse (half the flops; the factor is unique, so it is the same matrix). Should the
 * damped Hessian not factor (only possible numerically, or with damp 0), the damping is raised (0 to 0.01, else
 * tenfold) up to three times, then GPTQ falls back to RTN with the reason recorded.
 *
 * <p>Quantization ({@link #quantize}), in fp32 like the reference: weights of dead columns are set to 0; columns
 * are processed left to right in blocks; within a block each column is quantized with its group's qparams and its
 * error {@code (w - q) / U[j,j]} is propagated to the block's remaining columns through row j of U; after a block
 * the accumulated errors update all later columns with one GEMM ({@code W[:, end:] -= Err U[block, end:]}).
 * Qparams of a group are computed from the group's current, fully error-updated weights when its first column is
 * reached: blocks are therefore built from whole groups (consecutive groups up to {@code blockSize} columns, or a
 * single larger group), which with group_size 128 = blockSize and aligned segments is exactly the reference
 * schedule. Rows are independent, so rows of different widths (W_gate/W_up by micro-expert class) and column
 * segments of different widths (W_down) need nothing special beyond their own qparams.
 *
 * <p>With no calibration rows or an all-zero Hessian, GPTQ has nothing to minimize (the reference would zero every
 * weight as dead) and the result is exactly {@link RtnQuantizer}'s, flagged as a fallback.
 */
public final class GptqQuantizer {

    public static final double DEFAULT_DAMP = 0.01;
    public static final int DEFAULT_BLOCK_SIZE = 128;
    private static final int DAMP_ESCALATIONS = 3;

    private final double damp;
    private final int blockSize;
    private final HostAllocator allocator;

    public GptqQuantizer() {
        this(DEFAULT_DAMP, DEFAULT_BLOCK_SIZE, HostAllocator.root());
    }

    public GptqQuantizer(double damp) {
        this(damp, DEFAULT_BLOCK_SIZE, HostAllocator.root());
    }

    /**
     * @param damp      dampening as a fraction of mean(diag H), finite and at least 0 (GPTQ's percdamp, default 0.01)
     * @param blockSize columns per lazy-update block, at least 1 (default 128)
     * @param allocator owner of the off-heap working memory
     */
    public GptqQuantizer(double damp, int blockSize, HostAllocator allocator) {
        requireDamp(damp);
        if (blockSize < 1) {
            throw new IllegalArgumentException("GPTQ block size must be positive, got " + blockSize);
        }
        this.damp = damp;
        this.blockSize = blockSize;
        this.allocator = allocator;
    }

    /** Throws unless {@code damp} is finite and in [0, 1]. */
    public static void requireDamp(double damp) {
        if (!(damp >= 0 && damp <= 1)) {
            throw new IllegalArgumentException("damp must be a fraction of mean(diag H) in [0, 1], got " + damp);
        }
    }

    public double damp() {
        return damp;
    }

    /**
     * Factors a Hessian for {@link #quantize}; the result may serve several matrices with the same inputs. Uses
     * 8 * dim^2 bytes of transient native memory (32 MiB for dim 2048) and keeps a 4 * dim^2-byte fp32 factor.
     */
    public InverseHessian factor(Hessian hessian) {
        int n = hessian.dim();
        if (hessian.samples() == 0) {
            return InverseHessian.fallback(n, "no calibration tokens");
        }
        double[] row = new double[n];
        boolean[] dead = new boolean[n];
        double diagSum = 0;
        int deadCount = 0;
        for (int i = 0; i < n; i++) {
            double diag = hessian.diagonal(i);
            if (!Double.isFinite(diag)) {
                throw new IllegalStateException("Hessian diagonal " + i + " is " + diag);
            }
            if (diag == 0) {
                dead[i] = true;
                deadCount++;
                diagSum += 1; // the reference sets H[dead, dead] = 1 before taking the mean
            } else {
                diagSum += diag;
            }
        }
        if (deadCount == n) {
            return InverseHessian.fallback(n, "all-zero Hessian (every calibration input was 0)");
        }
        double mean = diagSum / n;
        long elements = (long) n * n;
        try (DoublePointer a = new DoublePointer(elements)) {
            double fraction = damp;
            for (int attempt = 0; attempt <= DAMP_ESCALATIONS; attempt++) {
                double dampAbs = fraction * mean;
                fillReversed(hessian, a, n, dead, dampAbs, row);
                // Cholesky of the index-reversed matrix J H J = L L^T gives H = R R^T with R = J L J upper
                // triangular, hence H^-1 = (R^-1)^T R^-1: the upper Cholesky factor of H^-1 is U = R^-1 = J L^-1 J.
                // One factorization and one triangular inverse (2n^3/3 flops) instead of the reference's
                // cholesky, cholesky_inverse, cholesky (4n^3/3); the factor is unique, so the result is the same.
                int info = openblas.LAPACKE_dpotrf(openblas.LAPACK_COL_MAJOR, (byte) 'L', n, a, n);
                if (info == 0) {
                    info = openblas.LAPACKE_dtrtri(openblas.LAPACK_COL_MAJOR, (byte) 'L', (byte) 'N', n, a, n);
                    if (info != 0) {
                        throw new IllegalStateException("LAPACK dtrtri failed with info " + info + " on a Cholesky factor");
                    }
                    return new InverseHessian(n, extractReversedInverse(a, n), dead, fraction, dampAbs, null);
                }
                if (info < 0) {
                    throw new IllegalStateException("LAPACK rejected argument " + (-info) + " while factoring a Hessian of dimension " + n);
                }
                fraction = fraction == 0 ? DEFAULT_DAMP : fraction * 10;
            }
        }
        return InverseHessian.fallback(n, "Hessian not positive definite even with damping raised to "
                + (damp == 0 ? DEFAULT_DAMP * 100 : damp * 1000) + " x mean(diag H)");
    }

    /**
     * Writes M = J (H + damping) J (J reverses indices) into LAPACK's column-major lower triangle: column c holds
     * M[r][c] = H[n-1-r][m] for r >= c, with m = n-1-c, i.e. the upper-triangle column m of H read bottom-up.
     */
    private static void fillReversed(Hessian hessian, DoublePointer a, int n, boolean[] dead, double dampAbs, double[] column) {
        double[] out = new double[n];
        for (int c = 0; c < n; c++) {
            int m = n - 1 - c;
            hessian.upperColumn(m, column); // H[k][m] for k <= m
            for (int k = 0; k <= m; k++) {
                if (!Double.isFinite(column[k])) {
                    throw new IllegalStateException("Hessian entry [" + k + ", " + m + "] is " + column[k]);
                }
            }
            column[m] = (dead[m] ? 1.0 : column[m]) + dampAbs;
            for (int r = c; r < n; r++) {
                out[r] = column[n - 1 - r];
            }
            a.position((long) c * n + c).put(out, c, n - c);
        }
        a.position(0);
    }

    /** Reads U = J L^-1 J (upper) from the column-major lower triangle of L^-1 in {@code a}. */
    private FloatTensor extractReversedInverse(DoublePointer a, int n) {
        FloatTensor u = allocator.allocate(Shape.of(n, n), "gptq-hinv");
        double[] col = new double[n];
        for (int p = 0; p < n; p++) {
            // column p of L^-1 (rows r >= p) is a[p * n + r]; U[n-1-r][n-1-p] = L^-1[r][p]
            a.position((long) p * n + p).get(col, p, n - p);
            int j = n - 1 - p;
            for (int r = p; r < n; r++) {
                u.set((long) (n - 1 - r) * n + j, (float) col[r]);
            }
        }
        a.position(0);
        return u;
    }

    /** Factors {@code hessian} and quantizes one matrix with it. */
    public GptqResult quantize(FloatTensor weights, QuantLayout layout, Hessian hessian) {
        try (InverseHessian h = factor(hessian)) {
            return quantize(weights, layout, h);
        }
    }

    /** Quantizes {@code weights} [rows, cols] under {@code layout}; {@code hinv} must be of dimension cols. */
    public GptqResult quantize(FloatTensor weights, QuantLayout layout, InverseHessian hinv) {
        RtnQuantizer.requireShape(weights, layout);
        int rows = layout.rows();
        int cols = layout.cols();
        if (hinv.dim() != cols) {
            throw new IllegalArgumentException("Hessian of dimension " + hinv.dim() + " does not match the " + cols
                    + " input columns of the weights");
        }
        if (hinv.isFallback()) {
            return new GptqResult(RtnQuantizer.quantize(weights, layout), hinv.fallbackReason(), 0, 0, 0);
        }
        int groups = layout.groupCount();
        byte[] q = new byte[rows * cols];
        float[] scales = new float[rows * groups];
        byte[] zeros = layout.symmetric() ? null : new byte[rows * groups];
        FloatTensor u = hinv.upper();
        double loss = 0;
        int[] blockStarts = blocks(layout);
        int maxBlock = 0;
        for (int b = 0; b + 1 < blockStarts.length; b++) {
            maxBlock = Math.max(maxBlock, blockStarts[b + 1] - blockStarts[b]);
        }
        float[] w = new float[cols];
        try (FloatTensor work = allocator.allocate(Shape.of(rows, cols), "gptq-weights");
             FloatTensor err = allocator.allocate(Shape.of(rows, maxBlock), "gptq-errors")) {
            for (int r = 0; r < rows; r++) {
                weights.copyTo((long) r * cols, w, 0, cols);
                RtnQuantizer.requireFinite(w, r);
                for (int c = 0; c < cols; c++) {
                    if (hinv.isDead(c)) {
                        w[c] = 0f;
                    }
                }
                work.copyFrom(w, 0, (long) r * cols, cols);
            }
            float[] hBlock = new float[maxBlock * maxBlock];
            float[] wr = new float[maxBlock];
            float[] er = new float[maxBlock];
            for (int b = 0; b + 1 < blockStarts.length; b++) {
                int b0 = blockStarts[b];
                int b1 = blockStarts[b + 1];
                int len = b1 - b0;
                for (int i = 0; i < len; i++) {
                    u.copyTo((long) (b0 + i) * cols + b0, hBlock, i * len, len);
                }
                for (int r = 0; r < rows; r++) {
                    work.copyTo((long) r * cols + b0, wr, 0, len);
                    loss += quantizeBlockRow(layout, r, b0, len, wr, er, hBlock, q, scales, zeros);
                    err.copyFrom(er, 0, (long) r * maxBlock, len);
                }
                if (b1 < cols) {
                    // W[:, b1:] -= Err[:, :len] * U[b0:b1, b1:]
                    NativeBlas.gemmAccumulate(rows, cols - b1, len, -1f, err, 0, maxBlock,
                            u, (long) b0 * cols + b1, cols, work, b1, cols);
                }
            }
        }
        return new GptqResult(QuantizedMatrix.trusted(layout, q, scales, zeros), null, loss / 2,
                hinv.deadColumnCount(), hinv.dampFraction());
    }

    /**
     * Quantizes columns [b0, b0+len) of row r (a run of whole groups) held in wr, writing the scaled errors into er;
     * returns the row's sum of squared scaled errors.
     */
    private static double quantizeBlockRow(QuantLayout layout, int r, int b0, int len, float[] wr, float[] er, float[] hBlock,
                                           byte[] q, float[] scales, byte[] zeros) {
        int cols = layout.cols();
        int groups = layout.groupCount();
        double loss = 0;
        for (int g = layout.groupOfColumn(b0); g < groups && layout.groupStart(g) < b0 + len; g++) {
            int from = layout.groupStart(g) - b0;
            int to = layout.groupEnd(g) - b0;
            // qparams from the group's current weights: every earlier column's error has reached them
            QuantScheme s = layout.scheme(r, g);
            float min = Float.POSITIVE_INFINITY;
            float max = Float.NEGATIVE_INFINITY;
            for (int c = from; c < to; c++) {
                min = Math.min(min, wr[c]);
                max = Math.max(max, wr[c]);
            }
            QuantScheme.GroupParams p = s.params(min, max);
            float scale = p.scale();
            int zero = p.zero();
            int cell = r * groups + g;
            scales[cell] = scale;
            if (zeros != null) {
                zeros[cell] = (byte) zero;
            }
            for (int i = from; i < to; i++) {
                float x = wr[i];
                int code = s.quantize(x, scale, zero);
                q[r * cols + b0 + i] = (byte) code;
                float e = (x - QuantScheme.dequantize(code, scale, zero)) / hBlock[i * len + i];
                loss += (double) e * e;
                er[i] = e;
                int hRow = i * len;
                for (int k = i + 1; k < len; k++) {
                    wr[k] -= e * hBlock[hRow + k];
                }
            }
        }
        return loss;
    }

    /** Block boundaries made of whole groups: consecutive groups up to blockSize columns, at least one group each. */
    private int[] blocks(QuantLayout layout) {
        int groups = layout.groupCount();
        int[] starts = new int[groups + 1];
        int n = 0;
        int g = 0;
        while (g < groups) {
            int start = layout.groupStart(g);
            starts[n++] = start;
            g++;
            while (g < groups && layout.groupEnd(g) - start <= blockSize) {
                g++;
            }
        }
        starts[n++] = layout.cols();
        return java.util.Arrays.copyOf(starts, n);
    }
}
