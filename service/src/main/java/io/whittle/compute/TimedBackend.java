package io.whittle.compute;

import io.whittle.tensor.FloatTensor;
import io.whittle.tensor.Shape;
import io.whittle.tensor.Tensor;

/**
 * A backend that times each compute operation of the backend it wraps and reports it to a
 * {@link KernelTimings.Listener} under the operation's name and the device's name, with the work it did (FLOPs of
 * matrix products, bytes of fp32 operands; see {@link KernelTimings.Listener#kernelFinished(String, String, long,
 * long, long)}), from which the dashboards derive achieved FLOP rates and bandwidth. Memory management (allocate,
 * upload, toHost) is passed through untimed. The operations of the CPU backend are synchronous, so the wall time is
 * the kernel time; an asynchronous backend must synchronise (or time with events) inside its operations for these
 * numbers to mean kernel time.
 */
final class TimedBackend implements Backend {

    /** Every tensor a backend operation sees is fp32. */
    private static final long F32 = Float.BYTES;

    private final Backend inner;
    private final KernelTimings.Listener listener;
    private final String device;

    TimedBackend(Backend inner, KernelTimings.Listener listener) {
        this.inner = inner;
        this.listener = listener;
        this.device = inner.name();
    }

    private void done(String kernel, long start, long flops, long bytes) {
        listener.kernelFinished(kernel, device, System.nanoTime() - start, flops, bytes);
    }

    private static long bytes(Tensor... tensors) {
        long n = 0;
        for (Tensor t : tensors) {
            if (t != null) {
                n += t.numel();
            }
        }
        return F32 * n;
    }

    /** Query-key pairs of causal attention over the sequences: L (L + 1) / 2 each. */
    static long causalPairs(int[] lengths) {
        long pairs = 0;
        for (int l : lengths) {
            pairs += (long) l * (l + 1) / 2;
        }
        return pairs;
    }

    /** Query-key pairs of bidirectional attention over the sequences: L^2 each. */
    static long fullPairs(int[] lengths) {
        long pairs = 0;
        for (int l : lengths) {
            pairs += (long) l * l;
        }
        return pairs;
    }

    /** Scores (q . k) and the weighted sum of values: 2 multiply-adds per head dimension and pair, per query head. */
    static long attentionFlops(AttentionShape shape, long pairs) {
        return 4L * shape.heads() * shape.headDim() * pairs;
    }

    @Override
    public String name() {
        return inner.name();
    }

    @Override
    public DeviceInfo device() {
        return inner.device();
    }

    @Override
    public Tensor allocate(Shape shape) {
        return inner.allocate(shape);
    }

    @Override
    public Tensor upload(FloatTensor host) {
        return inner.upload(host);
    }

    @Override
    public FloatTensor toHost(Tensor tensor) {
        return inner.toHost(tensor);
    }

    @Override
    public void copy(Tensor src, long srcPos, Tensor dst, long dstPos, long count) {
        long t = System.nanoTime();
        inner.copy(src, srcPos, dst, dstPos, count);
        done("copy", t, 0, 2 * F32 * count);
    }

    @Override
    public void matmul(Tensor a, boolean transposeA, Tensor b, boolean transposeB, float alpha, float beta, Tensor c) {
        long t = System.nanoTime();
        inner.matmul(a, transposeA, b, transposeB, alpha, beta, c);
        long m = c.rows();
        long n = c.cols();
        long k = transposeA ? a.rows() : a.cols();
        // c is read too when beta is not 0
        done("matmul", t, 2 * m * n * k, bytes(a, b, c) + (beta != 0f ? bytes(c) : 0));
    }

    @Override
    public void linear(Tensor x, Tensor weight, Tensor bias, Tensor y) {
        long t = System.nanoTime();
        inner.linear(x, weight, bias, y);
        done("linear", t, 2L * x.rows() * x.cols() * weight.rows(), bytes(x, weight, bias, y));
    }

    @Override
    public void rmsNorm(Tensor x, Tensor weight, double eps, Tensor y) {
        long t = System.nanoTime();
        inner.rmsNorm(x, weight, eps, y);
        done("rms_norm", t, 0, bytes(x, weight, y));
    }

    @Override
    public void rotary(Tensor x, int heads, int headDim, int[] positions, double theta) {
        long t = System.nanoTime();
        inner.rotary(x, heads, headDim, positions, theta);
        done("rotary", t, 0, 2 * bytes(x));
    }

    @Override
    public void siluMul(Tensor gate, Tensor up, Tensor out) {
        long t = System.nanoTime();
        inner.siluMul(gate, up, out);
        done("silu_mul", t, 0, bytes(gate, up, out));
    }

    @Override
    public void add(Tensor a, Tensor b, Tensor out) {
        long t = System.nanoTime();
        inner.add(a, b, out);
        done("add", t, 0, bytes(a, b, out));
    }

    @Override
    public void scaleRows(Tensor x, float[] scale) {
        long t = System.nanoTime();
        inner.scaleRows(x, scale);
        done("scale_rows", t, 0, 2 * bytes(x) + F32 * scale.length);
    }

    @Override
    public void attention(Tensor q, Tensor k, Tensor v, Tensor out, AttentionShape shape, int[] starts, int[] lengths,
                          AttentionObserver observer) {
        long t = System.nanoTime();
        inner.attention(q, k, v, out, shape, starts, lengths, observer);
        done("attention", t, attentionFlops(shape, causalPairs(lengths)), bytes(q, k, v, out));
    }

    @Override
    public Routing route(Tensor logits, int topK, boolean renormalize, double renormEpsilon) {
        long t = System.nanoTime();
        Routing r = inner.route(logits, topK, renormalize, renormEpsilon);
        done("route", t, 0, bytes(logits));
        return r;
    }

    @Override
    public void gatherRows(Tensor src, int[] rows, Tensor dst) {
        long t = System.nanoTime();
        inner.gatherRows(src, rows, dst);
        done("gather_rows", t, 0, 2 * F32 * rows.length * dst.cols());
    }

    @Override
    public void scatterAddRows(Tensor src, int[] rows, float[] weights, Tensor dst) {
        long t = System.nanoTime();
        inner.scatterAddRows(src, rows, weights, dst);
        // reads the source rows and the destination rows, writes the destination rows
        done("scatter_add_rows", t, 0, 3 * F32 * rows.length * dst.cols());
    }

    @Override
    public double[] rowSumSquares(Tensor x) {
        long t = System.nanoTime();
        double[] r = inner.rowSumSquares(x);
        done("row_sum_squares", t, 2L * x.numel(), bytes(x));
        return r;
    }

    @Override
    public double[] columnSumSquares(Tensor x) {
        long t = System.nanoTime();
        double[] r = inner.columnSumSquares(x);
        done("column_sum_squares", t, 2L * x.numel(), bytes(x));
        return r;
    }

    @Override
    public double[] crossEntropy(Tensor logits, int[] targets) {
        long t = System.nanoTime();
        double[] r = inner.crossEntropy(logits, targets);
        done("cross_entropy", t, 0, bytes(logits));
        return r;
    }

    @Override
    public void microExpertEnergy(Tensor xRouted, Tensor wGate, Tensor wUp, float[] routingWeight, double[] sumSq,
                                  double[] maxSq) {
        long t = System.nanoTime();
        inner.microExpertEnergy(xRouted, wGate, wUp, routingWeight, sumSq, maxSq);
        // the gate and up products of every routed row
        done("micro_expert_energy", t, 2 * 2L * xRouted.rows() * xRouted.cols() * wGate.rows(), bytes(xRouted, wGate, wUp));
    }

    @Override
    public void layerNorm(Tensor x, Tensor weight, Tensor bias, double eps, Tensor y) {
        long t = System.nanoTime();
        inner.layerNorm(x, weight, bias, eps, y);
        done("layer_norm", t, 0, bytes(x, weight, bias, y));
    }

    @Override
    public void gelu(Tensor x, Tensor out) {
        long t = System.nanoTime();
        inner.gelu(x, out);
        done("gelu", t, 0, bytes(x, out));
    }

    @Override
    public void quickGelu(Tensor x, Tensor out) {
        long t = System.nanoTime();
        inner.quickGelu(x, out);
        done("quick_gelu", t, 0, bytes(x, out));
    }

    @Override
    public void bidirectionalAttention(Tensor q, Tensor k, Tensor v, Tensor out, AttentionShape shape, int[] starts,
                                       int[] lengths) {
        long t = System.nanoTime();
        inner.bidirectionalAttention(q, k, v, out, shape, starts, lengths);
        done("bidirectional_attention", t, attentionFlops(shape, fullPairs(lengths)), bytes(q, k, v, out));
    }

    @Override
    public void copyBlock(Tensor src, int srcRow, int srcCol, Tensor dst, int dstRow, int dstCol, int rows, int cols) {
        long t = System.nanoTime();
        inner.copyBlock(src, srcRow, srcCol, dst, dstRow, dstCol, rows, cols);
        done("copy_block", t, 0, 2 * F32 * rows * cols);
    }

    @Override
    public void visualMaskedAttention(Tensor q, Tensor k, Tensor v, Tensor out, AttentionShape shape, VisualLayout layout,
                                      boolean[] keepHeads, boolean renormalize, AttentionObserver observer) {
        long t = System.nanoTime();
        inner.visualMaskedAttention(q, k, v, out, shape, layout, keepHeads, renormalize, observer);
        // computed densely over all [T, T] scores of every head
        done("visual_masked_attention", t, attentionFlops(shape, fullPairs(new int[] {q.rows()})), bytes(q, k, v, out));
    }

    @Override
    public void visualPrunedAttention(Tensor q, Tensor k, Tensor v, Tensor out, AttentionShape shape, VisualLayout layout,
                                      boolean[] keepHeads) {
        long t = System.nanoTime();
        inner.visualPrunedAttention(q, k, v, out, shape, layout, keepHeads);
        // the work depends on the masks; FLOPs are not counted, the operands are (an upper bound of what is read)
        done("visual_pruned_attention", t, 0, bytes(q, k, v, out));
    }

    @Override
    public void close() {
        inner.close();
    }
}
