package io.whittle.compute;

import io.whittle.tensor.FloatTensor;
import io.whittle.tensor.Shape;
import io.whittle.tensor.Tensor;

/**
 * The compute operations the engine needs, at a coarse grain (a whole GEMM, a whole RMSNorm, a whole attention)
 * so that a GPU backend can fuse and the CPU backend can use BLAS. Every tensor argument is an fp32, row-major,
 * contiguous tensor made by this backend ({@link #allocate}, {@link #upload}, or a view of one). Matrices are the
 * 2-D (rows x cols) view of a tensor: all dimensions but the last are rows.
 *
 * <p>Implementations: {@code cpu} (OpenBLAS, the reference every other backend is tested against) and, where a
 * GPU is usable, {@code cuda}.
 */
public interface Backend extends AutoCloseable {

    /** Short name: {@code cpu}, {@code cuda:0}. */
    String name();

    /** What this backend runs on, for reports and {@code /api/v1/devices}. */
    DeviceInfo device();

    /** A zero-filled tensor. */
    Tensor allocate(Shape shape);

    /** A tensor holding the host values; close it when done (on the CPU it is a view and costs nothing). */
    Tensor upload(FloatTensor host);

    /** Host memory with the tensor's values; close it when done (on the CPU it is a view and costs nothing). */
    FloatTensor toHost(Tensor tensor);

    /** Copies {@code count} elements from src[srcPos..] to dst[dstPos..]. */
    void copy(Tensor src, long srcPos, Tensor dst, long dstPos, long count);

    /**
     * General matrix multiply {@code c = alpha * op(a) * op(b) + beta * c}, where op transposes when asked. Shapes
     * are the matrix views; a mismatch is an {@link IllegalArgumentException} naming the shapes.
     */
    void matmul(Tensor a, boolean transposeA, Tensor b, boolean transposeB, float alpha, float beta, Tensor c);

    /** A Linear layer as PyTorch stores it: {@code y[T, out] = x[T, in] * w[out, in]^T (+ bias[out])}. */
    void linear(Tensor x, Tensor weight, Tensor bias, Tensor y);

    /**
     * RMSNorm over rows of length {@code weight.numel()}: {@code y = w * x / sqrt(mean(x^2) + eps)}, the statistic
     * in fp32 or better. {@code y} may be {@code x}.
     */
    void rmsNorm(Tensor x, Tensor weight, double eps, Tensor y);

    /**
     * Rotary embedding in place, {@code rotate_half} convention (channel i pairs with i + headDim/2), on
     * {@code x[T, heads * headDim]} where token t has position {@code positions[t]}.
     */
    void rotary(Tensor x, int heads, int headDim, int[] positions, double theta);

    /** {@code out = silu(gate) * up}, element-wise; out may alias either input. */
    void siluMul(Tensor gate, Tensor up, Tensor out);

    /** {@code out = a + b}, element-wise; out may alias either input. */
    void add(Tensor a, Tensor b, Tensor out);

    /** Multiplies row r of {@code x} by {@code scale[r]} in place. */
    void scaleRows(Tensor x, float[] scale);

    /**
     * Causal grouped-query attention over packed sequences: q [T, heads*headDim], k and v [T, kvHeads*headDim],
     * out [T, heads*headDim]; sequence s covers rows [starts[s], starts[s] + lengths[s]) and attends only within
     * itself. Scores scale by {@code headDim^-0.5}, softmax in fp32 or better. Query head h reads KV head
     * {@code h / (heads / kvHeads)}.
     */
    void attention(Tensor q, Tensor k, Tensor v, Tensor out, AttentionShape shape, int[] starts, int[] lengths,
                   AttentionObserver observer);

    /**
     * MoE routing: softmax over all experts of each row of {@code logits [T, E]}, top-k (ties to the lower expert
     * index), optional renormalisation of the k weights (dividing by their sum plus {@code renormEpsilon}).
     */
    Routing route(Tensor logits, int topK, boolean renormalize, double renormEpsilon);

    /** dst[i, :] = src[rows[i], :]. */
    void gatherRows(Tensor src, int[] rows, Tensor dst);

    /** dst[rows[i], :] += weights[i] * src[i, :] (weights may be null for 1). Rows are added in index order. */
    void scatterAddRows(Tensor src, int[] rows, float[] weights, Tensor dst);

    /**
     * The CAMERA micro-expert scoring pass of one SwiGLU expert: for every row t of {@code xRouted [n, hidden]} and
     * every channel j of {@code wGate, wUp [f, hidden]}, the coefficient
     * {@code phi_j(t) = routingWeight[t] * silu(wGate_j . x_t) * (wUp_j . x_t)}; adds {@code phi_j(t)^2} to
     * {@code sumSq[j]} and raises {@code maxSq[j]} to it where larger. Accumulates in fp64 or better, visits rows in
     * order for every channel (so results do not depend on threading), and never holds the [n, f] activations of
     * all rows at once. One coarse operation so that a GPU backend can fuse both products with the epilogue.
     *
     * <p>The default works on any backend from {@link #linear} and {@link #toHost}, in row chunks.
     */
    default void microExpertEnergy(Tensor xRouted, Tensor wGate, Tensor wUp, float[] routingWeight, double[] sumSq,
                                   double[] maxSq) {
        MicroExpertEnergy.check(xRouted, wGate, wUp, routingWeight, sumSq, maxSq);
        int n = xRouted.rows();
        int f = wGate.rows();
        int chunk = MicroExpertEnergy.chunkRows(n, f);
        for (int r0 = 0; r0 < n; r0 += chunk) {
            int m = Math.min(chunk, n - r0);
            try (Tensor g = allocate(Shape.of(m, f));
                 Tensor u = allocate(Shape.of(m, f))) {
                Tensor x = xRouted.rowSlice(r0, m);
                linear(x, wGate, null, g);
                linear(x, wUp, null, u);
                try (FloatTensor hg = toHost(g);
                     FloatTensor hu = toHost(u)) {
                    MicroExpertEnergy.accumulate(hg, hu, m, f, routingWeight, r0, 0, f, sumSq, maxSq);
                }
            }
        }
    }

    /** Sum of squares of each row of the matrix view, in fp64 (squared row norms). */
    double[] rowSumSquares(Tensor x);

    /** Sum of squares of each column of the matrix view, in fp64 (squared column norms). */
    double[] columnSumSquares(Tensor x);

    /**
     * Negative log-likelihood of {@code targets[r]} under log-softmax of {@code logits} row r, in fp64;
     * a target of -1 gives NaN (no prediction).
     */
    double[] crossEntropy(Tensor logits, int[] targets);

    @Override
    void close();

    // ---- visual-token pruning (YOPO) and the CLIP vision tower ----

    /**
     * LayerNorm over rows of length {@code weight.numel()}: {@code y = (x - mean) / sqrt(var + eps) * w + b}, the
     * biased variance, statistics in fp64. {@code bias} may be null; {@code y} may be {@code x}.
     */
    void layerNorm(Tensor x, Tensor weight, Tensor bias, double eps, Tensor y);

    /** Exact GELU, {@code 0.5 x (1 + erf(x / sqrt 2))}, element-wise; out may alias x. */
    void gelu(Tensor x, Tensor out);

    /** CLIP's quick_gelu, {@code x * sigmoid(1.702 x)}, element-wise; out may alias x. */
    void quickGelu(Tensor x, Tensor out);

    /**
     * Non-causal (encoder) attention over packed sequences: as {@link #attention}, but every query of a sequence
     * attends to every key of that sequence.
     */
    void bidirectionalAttention(Tensor q, Tensor k, Tensor v, Tensor out, AttentionShape shape, int[] starts, int[] lengths);

    /**
     * Copies the block of {@code rows} x {@code cols} elements at (srcRow, srcCol) of the matrix view of
     * {@code src} to (dstRow, dstCol) of {@code dst} (a strided 2-D copy, e.g. head columns between a full-width
     * and a compact projection). Out-of-bounds blocks are an {@link IllegalArgumentException}; so are blocks that
     * overlap in memory on backends that copy in parallel (CUDA).
     */
    void copyBlock(Tensor src, int srcRow, int srcCol, Tensor dst, int dstRow, int dstCol, int rows, int cols);

    /**
     * Attention of ONE multimodal sequence with the visual-token pruning masks, computed densely over all
     * [T, T] scores (the reference for {@link #visualPrunedAttention}). q [T, heads*headDim], k and v
     * [T, kvHeads*headDim], rows laid out as {@code layout} says. Allowed keys: causal, except that the visual x
     * visual block is replaced by the bidirectional grid window. For a head with {@code keepHeads[h] == false}
     * the visual key columns are excluded before the softmax (renormalised, {@code renormalize}) or, as the
     * released YOPO code does, multiplied by zero after it (rows then sum to less than 1), and the visual rows of
     * that head output 0. The observer, when it wants them, gets the final [T, T] weights of each head.
     */
    void visualMaskedAttention(Tensor q, Tensor k, Tensor v, Tensor out, AttentionShape shape, VisualLayout layout,
                               boolean[] keepHeads, boolean renormalize, AttentionObserver observer);

    /**
     * The same result as {@link #visualMaskedAttention} with {@code renormalize}, computed sparsely: prefix rows
     * attend causally within the prefix; visual rows of a kept head attend to the prefix and their grid window
     * only (scores are formed per block of grid rows against the grid rows its windows reach, not [V, V]), and visual rows of a pruned head are not computed (their output
     * columns are set to 0, and their q/k/v columns are never read); text rows attend causally to prefix and text
     * and, in kept heads only, to all visual keys. A kv head is read for visual rows only when some query head of
     * its group is kept.
     */
    void visualPrunedAttention(Tensor q, Tensor k, Tensor v, Tensor out, AttentionShape shape, VisualLayout layout,
                               boolean[] keepHeads);
}
