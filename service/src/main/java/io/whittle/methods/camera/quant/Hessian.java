package io.whittle.methods.camera.quant;

import io.whittle.tensor.FloatTensor;
import io.whittle.tensor.HostAllocator;
import io.whittle.tensor.Shape;

/**
 * GPTQ's layer Hessian of one linear map, {@code H = 2/n * sum_t w_t x_t x_t^T} over the n input rows it has
 * seen (w_t = 1 unless row weights are given), accumulated batch by batch with one BLAS {@code ssyrk} per batch
 * into an off-heap fp32 sum (upper triangle only), as the reference accumulates in fp32. GPTQ's result does not
 * depend on the factor 2/n (its damping is relative to the mean diagonal), so n simply counts rows.
 *
 * <p>Memory: 4 * dim^2 bytes off-heap (16 MiB for dim 2048), released by {@link #close()}. Not thread-safe.
 */
public final class Hessian implements AutoCloseable {

    private static final int CHUNK_ROWS = 256;

    private final int dim;
    private final HostAllocator allocator;
    private final FloatTensor sum; // upper triangle of sum_t w_t x_t x_t^T, row-major [dim, dim]
    private long samples;

    public Hessian(int dim) {
        this(dim, HostAllocator.root());
    }

    public Hessian(int dim, HostAllocator allocator) {
        if (dim < 1) {
            throw new IllegalArgumentException("Hessian dimension must be positive, got " + dim);
        }
        this.dim = dim;
        this.allocator = allocator;
        this.sum = allocator.allocate(Shape.of(dim, dim), "hessian");
    }

    public int dim() {
        return dim;
    }

    /** Input rows accumulated so far (n). */
    public long samples() {
        return samples;
    }

    /** Adds the rows of {@code batch} [tokens, dim] (a contiguous tensor or row slice). */
    public void add(FloatTensor batch) {
        int tokens = requireBatch(batch);
        requireFinite(batch, tokens);
        NativeBlas.syrkUpperAccumulate(batch, tokens, dim, sum);
        samples += tokens;
    }

    /**
     * Adds the rows of {@code batch} [tokens, dim], row t weighted by {@code rowWeights[t]} (finite, at least 0),
     * e.g. by routing probability. Each row still counts once in n.
     */
    public void add(FloatTensor batch, float[] rowWeights) {
        int tokens = requireBatch(batch);
        if (rowWeights.length != tokens) {
            throw new IllegalArgumentException("Hessian batch has " + tokens + " rows but " + rowWeights.length + " row weights");
        }
        for (int t = 0; t < tokens; t++) {
            if (!(rowWeights[t] >= 0f) || !Float.isFinite(rowWeights[t])) {
                throw new IllegalArgumentException("row weight " + t + " is " + rowWeights[t] + "; weights must be finite and >= 0");
            }
        }
        requireFinite(batch, tokens);
        float[] row = new float[dim];
        try (FloatTensor scaled = allocator.allocate(Shape.of(Math.min(CHUNK_ROWS, Math.max(1, tokens)), dim), "hessian-batch")) {
            for (int t0 = 0; t0 < tokens; t0 += CHUNK_ROWS) {
                int m = Math.min(CHUNK_ROWS, tokens - t0);
                for (int i = 0; i < m; i++) {
                    batch.copyTo((long) (t0 + i) * dim, row, 0, dim);
                    float s = (float) Math.sqrt(rowWeights[t0 + i]);
                    for (int c = 0; c < dim; c++) {
                        row[c] *= s;
                    }
                    scaled.copyFrom(row, 0, (long) i * dim, dim);
                }
                NativeBlas.syrkUpperAccumulate(scaled, m, dim, sum);
            }
        }
        samples += tokens;
    }

    /** Adds rows given as arrays (each of length dim). */
    public void add(float[][] rows) {
        for (int t = 0; t < rows.length; t++) {
            if (rows[t].length != dim) {
                throw new IllegalArgumentException("Hessian input row " + t + " has " + rows[t].length + " values, expected " + dim);
            }
        }
        try (FloatTensor chunk = allocator.allocate(Shape.of(Math.min(CHUNK_ROWS, Math.max(1, rows.length)), dim), "hessian-batch")) {
            for (int t0 = 0; t0 < rows.length; t0 += CHUNK_ROWS) {
                int m = Math.min(CHUNK_ROWS, rows.length - t0);
                for (int i = 0; i < m; i++) {
                    chunk.copyFrom(rows[t0 + i], 0, (long) i * dim, dim);
                }
                add(chunk.rowSlice(0, m));
            }
        }
    }

    /** H = 2/n * sum as a full symmetric [dim, dim] matrix (all zeros when no rows were added). */
    public FloatTensor toMatrix(HostAllocator into) {
        FloatTensor h = into.allocate(Shape.of(dim, dim), "hessian-matrix");
        double scale = samples == 0 ? 0 : 2.0 / samples;
        for (int i = 0; i < dim; i++) {
            for (int j = i; j < dim; j++) {
                float v = (float) (sum.get((long) i * dim + j) * scale);
                h.set((long) i * dim + j, v);
                h.set((long) j * dim + i, v);
            }
        }
        return h;
    }

    /** H[i][i]. */
    double diagonal(int i) {
        return samples == 0 ? 0 : sum.get((long) i * dim + i) * (2.0 / samples);
    }

    /** Column {@code m} of the upper triangle of H (rows 0..m) as doubles, into {@code out[0..m]}. */
    void upperColumn(int m, double[] out) {
        double scale = samples == 0 ? 0 : 2.0 / samples;
        for (int k = 0; k <= m; k++) {
            out[k] = sum.get((long) k * dim + m) * scale;
        }
    }

    private int requireBatch(FloatTensor batch) {
        if (batch.shape().rank() != 2 || batch.shape().dim(1) != dim) {
            throw new IllegalArgumentException("Hessian of dimension " + dim + " needs a [tokens, " + dim + "] batch, got "
                    + batch.shape());
        }
        return Math.toIntExact(batch.shape().dim(0));
    }

    private void requireFinite(FloatTensor batch, int tokens) {
        float[] row = new float[dim];
        for (int t = 0; t < tokens; t++) {
            batch.copyTo((long) t * dim, row, 0, dim);
            for (int c = 0; c < dim; c++) {
                if (!Float.isFinite(row[c])) {
                    throw new IllegalArgumentException("calibration input row " + t + ", column " + c + " is " + row[c]
                            + "; the Hessian needs finite activations");
                }
            }
        }
    }

    @Override
    public void close() {
        sum.close();
    }
}
