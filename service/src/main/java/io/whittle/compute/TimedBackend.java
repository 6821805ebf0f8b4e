package io.whittle.compute;

import io.whittle.tensor.FloatTensor;
import io.whittle.tensor.Shape;
import io.whittle.tensor.Tensor;

/**
 * A backend that times each compute operation of the backend it wraps and reports it to a
 * {@link KernelTimings.Listener} under the operation's name and the device's name. Memory management
 * (allocate, upload, toHost) is passed through untimed. The operations of the CPU backend are synchronous, so the
 * wall time is the kernel time; an asynchronous backend must synchronise (or time with events) inside its
 * operations for these numbers to mean kernel time.
 */
final class TimedBackend implements Backend {

    private final Backend inner;
    private final KernelTimings.Listener listener;
    private final String device;

    TimedBackend(Backend inner, KernelTimings.Listener listener) {
        this.inner = inner;
        this.listener = listener;
        this.device = inner.name();
    }

    private void done(String kernel, long start) {
        listener.kernelFinished(kernel, device, System.nanoTime() - start);
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
        done("copy", t);
    }

    @Override
    public void matmul(Tensor a, boolean transposeA, Tensor b, boolean transposeB, float alpha, float beta, Tensor c) {
        long t = System.nanoTime();
        inner.matmul(a, transposeA, b, transposeB, alpha, beta, c);
        done("matmul", t);
    }

    @Override
    public void linear(Tensor x, Tensor weight, Tensor bias, Tensor y) {
        long t = System.nanoTime();
        inner.linear(x, weight, bias, y);
        done("linear", t);
    }

    @Override
    public void rmsNorm(Tensor x, Tensor weight, double eps, Tensor y) {
        long t = System.nanoTime();
        inner.rmsNorm(x, weight, eps, y);
        done("rms_norm", t);
    }

    @Override
    public void rotary(Tensor x, int heads, int headDim, int[] positions, double theta) {
        long t = System.nanoTime();
        inner.rotary(x, heads, headDim, positions, theta);
        done("rotary", t);
    }

    @Override
    public void siluMul(Tensor gate, Tensor up, Tensor out) {
        long t = System.nanoTime();
        inner.siluMul(gate, up, out);
        done("silu_mul", t);
    }

    @Override
    public void add(Tensor a, Tensor b, Tensor out) {
        long t = System.nanoTime();
        inner.add(a, b, out);
        done("add", t);
    }

    @Override
    public void scaleRows(Tensor x, float[] scale) {
        long t = System.nanoTime();
        inner.scaleRows(x, scale);
        done("scale_rows", t);
    }

    @Override
    public void attention(Tensor q, Tensor k, Tensor v, Tensor out, AttentionShape shape, int[] starts, int[] lengths,
                          AttentionObserver observer) {
        long t = System.nanoTime();
        inner.attention(q, k, v, out, shape, starts, lengths, observer);
        done("attention", t);
    }

    @Override
    public Routing route(Tensor logits, int topK, boolean renormalize, double renormEpsilon) {
        long t = System.nanoTime();
        Routing r = inner.route(logits, topK, renormalize, renormEpsilon);
        done("route", t);
        return r;
    }

    @Override
    public void gatherRows(Tensor src, int[] rows, Tensor dst) {
        long t = System.nanoTime();
        inner.gatherRows(src, rows, dst);
        done("gather_rows", t);
    }

    @Override
    public void scatterAddRows(Tensor src, int[] rows, float[] weights, Tensor dst) {
        long t = System.nanoTime();
        inner.scatterAddRows(src, rows, weights, dst);
        done("scatter_add_rows", t);
    }

    @Override
    public double[] crossEntropy(Tensor logits, int[] targets) {
        long t = System.nanoTime();
        double[] r = inner.crossEntropy(logits, targets);
        done("cross_entropy", t);
        return r;
    }

    @Override
    public void microExpertEnergy(Tensor xRouted, Tensor wGate, Tensor wUp, float[] routingWeight, double[] sumSq,
                                  double[] maxSq) {
        long t = System.nanoTime();
        inner.microExpertEnergy(xRouted, wGate, wUp, routingWeight, sumSq, maxSq);
        done("micro_expert_energy", t);
    }

    @Override
    public void layerNorm(Tensor x, Tensor weight, Tensor bias, double eps, Tensor y) {
        long t = System.nanoTime();
        inner.layerNorm(x, weight, bias, eps, y);
        done("layer_norm", t);
    }

    @Override
    public void gelu(Tensor x, Tensor out) {
        long t = System.nanoTime();
        inner.gelu(x, out);
        done("gelu", t);
    }

    @Override
    public void quickGelu(Tensor x, Tensor out) {
        long t = System.nanoTime();
        inner.quickGelu(x, out);
        done("quick_gelu", t);
    }

    @Override
    public void bidirectionalAttention(Tensor q, Tensor k, Tensor v, Tensor out, AttentionShape shape, int[] starts,
                                       int[] lengths) {
        long t = System.nanoTime();
        inner.bidirectionalAttention(q, k, v, out, shape, starts, lengths);
        done("bidirectional_attention", t);
    }

    @Override
    public void copyBlock(Tensor src, int srcRow, int srcCol, Tensor dst, int dstRow, int dstCol, int rows, int cols) {
        long t = System.nanoTime();
        inner.copyBlock(src, srcRow, srcCol, dst, dstRow, dstCol, rows, cols);
        done("copy_block", t);
    }

    @Override
    public void visualMaskedAttention(Tensor q, Tensor k, Tensor v, Tensor out, AttentionShape shape, VisualLayout layout,
                                      boolean[] keepHeads, boolean renormalize, AttentionObserver observer) {
        long t = System.nanoTime();
        inner.visualMaskedAttention(q, k, v, out, shape, layout, keepHeads, renormalize, observer);
        done("visual_masked_attention", t);
    }

    @Override
    public void visualPrunedAttention(Tensor q, Tensor k, Tensor v, Tensor out, AttentionShape shape, VisualLayout layout,
                                      boolean[] keepHeads) {
        long t = System.nanoTime();
        inner.visualPrunedAttention(q, k, v, out, shape, layout, keepHeads);
        done("visual_pruned_attention", t);
    }

    @Override
    public void close() {
        inner.close();
    }
}
