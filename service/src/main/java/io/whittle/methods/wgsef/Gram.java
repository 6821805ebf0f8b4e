package io.whittle.methods.wgsef;

import static org.bytedeco.openblas.global.openblas.cblas_ssyrk;

import io.whittle.tensor.FloatTensor;
import java.nio.FloatBuffer;
import org.bytedeco.javacpp.FloatPointer;
import org.bytedeco.javacpp.Pointer;

/**
 * The calibration statistic of one linear layer's input: the sum of x x^T over n calibration rows, so that
 * H = X^T X / n (wgsef.md §7). Kept off-heap in fp32 so that the solver's products (W - W') H go straight to BLAS;
 * rows are added with SSYRK (half the flops of a GEMM) and the upper triangle is mirrored once before use. Damping
 * (delta I) is not stored: the solver adds it where needed.
 *
 * <p>Owns native memory: close it (try-with-resources). Not thread-safe.
 */
public final class Gram implements AutoCloseable {

    private final int dim;
    private final FloatPointer sum;
    private final FloatBuffer view;
    private long samples;
    private boolean mirrored = true;

    /** An empty statistic for inputs of width {@code dim}. */
    public Gram(int dim) {
        if (dim < 1) {
            throw new IllegalArgumentException("Gram: dimension must be >= 1, got " + dim);
        }
        long n = Math.multiplyExact((long) dim, (long) dim);
        if (n > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("Gram: dimension " + dim + " is too large for one buffer");
        }
        this.dim = dim;
        this.sum = new FloatPointer(n);
        Pointer.memset(sum, 0, n * Float.BYTES);
        this.view = sum.asBuffer();
    }

    /** A statistic holding a given H (dim x dim, row-major, symmetric) as the mean over one sample. */
    public static Gram ofMatrix(float[] h, int dim) {
        Gram g = new Gram(dim);
        if (h.length != (long) dim * dim) {
            g.close();
            throw new IllegalArgumentException("Gram: expected " + (long) dim * dim + " values for " + dim + " x " + dim
                    + ", got " + h.length);
        }
        g.sum.put(h, 0, h.length);
        g.samples = 1;
        return g;
    }

    /** The statistic of the rows of {@code x} (rows x dim, row-major). */
    public static Gram ofInputs(float[] x, int rows, int dim) {
        Gram g = new Gram(dim);
        g.accumulate(x, rows);
        return g;
    }

    /** Adds the rows of {@code x} (rows x dim, row-major). */
    public void accumulate(float[] x, int rows) {
        if (rows < 0 || x.length != (long) rows * dim) {
            throw new IllegalArgumentException("Gram: expected " + (long) rows * dim + " values for " + rows + " rows of "
                    + dim + ", got " + x.length);
        }
        if (rows == 0) {
            return;
        }
        try (FloatPointer xp = new FloatPointer(x)) {
            syrk(xp, rows);
        }
    }

    /** Adds the rows of a (rows x dim) tensor, read in place. */
    public void accumulate(FloatTensor x) {
        if (x.shape().cols() != dim) {
            throw new IllegalArgumentException("Gram: expected inputs of width " + dim + ", got shape " + x.shape());
        }
        long rows = x.shape().rows();
        if (rows > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("Gram: too many rows in one batch: " + rows);
        }
        if (rows > 0) {
            syrk(Blas.wrap(x.address(), x.numel()), (int) rows);
        }
    }

    private void syrk(FloatPointer x, int rows) {
        // lower triangle of sum += x^T x
        cblas_ssyrk(Blas.ROW_MAJOR, Blas.LOWER, Blas.TRANS, dim, rows, 1f, x, dim, 1f, sum, dim);
        samples += rows;
        mirrored = false;
    }

    public int dim() {
        return dim;
    }

    /** Number of rows accumulated (1 for {@link #ofMatrix}). */
    public long samples() {
        return samples;
    }

    /** 1 / n, the factor from the stored sum to H (0 before any sample). */
    float scale() {
        return samples == 0 ? 0f : (float) (1.0 / samples);
    }

    /** The full symmetric sum (mirrored on first use after accumulation). */
    FloatPointer sum() {
        if (!mirrored) {
            for (int i = 0; i < dim; i++) {
                int row = i * dim;
                for (int j = 0; j < i; j++) {
                    view.put(j * dim + i, view.get(row + j));
                }
            }
            mirrored = true;
        }
        return sum;
    }

    /** H[i][j] (after the 1/n scaling). */
    double get(int i, int j) {
        sum();
        return (double) view.get(i * dim + j) * scale();
    }

    /** Mean of the diagonal of H. */
    public double meanDiagonal() {
        double s = 0;
        for (int i = 0; i < dim; i++) {
            s += view.get(i * dim + i);
        }
        return s * scale() / dim;
    }

    /** H = sum / n as a row-major array. */
    public float[] toArray() {
        float[] out = new float[dim * dim];
        sum().get(out, 0, out.length);
        float s = scale();
        for (int i = 0; i < out.length; i++) {
            out[i] *= s;
        }
        return out;
    }

    @Override
    public void close() {
        sum.close();
    }
}
