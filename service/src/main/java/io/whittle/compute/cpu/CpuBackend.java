package io.whittle.compute.cpu;

import io.whittle.compute.AttentionObserver;
import io.whittle.compute.AttentionShape;
import io.whittle.compute.Backend;
import io.whittle.compute.DeviceInfo;
import io.whittle.compute.MicroExpertEnergy;
import io.whittle.compute.Routing;
import io.whittle.tensor.FloatTensor;
import io.whittle.tensor.HostAllocator;
import io.whittle.tensor.Shape;
import io.whittle.tensor.Tensor;
import java.util.stream.IntStream;

/**
 * The reference backend: fp32 on the host, matrix products through OpenBLAS (both cores), everything else in
 * plain Java over rows, parallel where the work is large enough to pay for it. Reductions accumulate in fp64.
 */
public final class CpuBackend implements Backend {

    /** Below this many elements a row-parallel loop costs more than it saves. */
    private static final long PARALLEL_THRESHOLD = 1 << 16;
    /** Channels per parallel task of the micro-expert energy epilogue. */
    private static final int ENERGY_COLUMN_BLOCK = 128;

    private final HostAllocator allocator;
    private final DeviceInfo device;

    public CpuBackend(HostAllocator allocator) {
        OpenBlas.load();
        this.allocator = allocator;
        this.device = describe();
    }

    public CpuBackend() {
        this(HostAllocator.root());
    }

    static DeviceInfo describe() {
        int threads = Runtime.getRuntime().availableProcessors();
        return new DeviceInfo("cpu", "cpu", cpuName(), null, Runtime.getRuntime().maxMemory(), threads, true, true, true,
                OpenBlas.config(), "ok");
    }

    private static String cpuName() {
        try {
            for (String line : java.nio.file.Files.readAllLines(java.nio.file.Path.of("/proc/cpuinfo"))) {
                if (line.startsWith("model name")) {
                    return line.substring(line.indexOf(':') + 1).trim();
                }
            }
        } catch (java.io.IOException | RuntimeException ignored) {
            // not Linux, or no procfs: the architecture is name enough
        }
        return System.getProperty("os.arch");
    }

    @Override
    public String name() {
        return "cpu";
    }

    @Override
    public DeviceInfo device() {
        return device;
    }

    public HostAllocator allocator() {
        return allocator;
    }

    @Override
    public Tensor allocate(Shape shape) {
        return allocator.allocate(shape, "cpu");
    }

    @Override
    public Tensor upload(FloatTensor host) {
        return host.view(0, host.shape());
    }

    @Override
    public FloatTensor toHost(Tensor tensor) {
        FloatTensor t = host(tensor);
        return t.view(0, t.shape());
    }

    @Override
    public void copy(Tensor src, long srcPos, Tensor dst, long dstPos, long count) {
        host(dst).copyFrom(host(src), srcPos, dstPos, count);
    }

    @Override
    public void matmul(Tensor a, boolean transposeA, Tensor b, boolean transposeB, float alpha, float beta, Tensor c) {
        FloatTensor ha = host(a);
        FloatTensor hb = host(b);
        FloatTensor hc = host(c);
        int ar = ha.rows(), ac = ha.cols(), br = hb.rows(), bc = hb.cols();
        int m = transposeA ? ac : ar;
        int k = transposeA ? ar : ac;
        int kb = transposeB ? bc : br;
        int n = transposeB ? br : bc;
        if (k != kb || hc.rows() != m || hc.cols() != n) {
            throw new IllegalArgumentException("matmul shape mismatch: op(a)=" + m + "x" + k + " (a " + ha.shape()
                    + (transposeA ? "^T" : "") + "), op(b)=" + kb + "x" + n + " (b " + hb.shape() + (transposeB ? "^T" : "")
                    + "), c " + hc.shape());
        }
        if (m == 0 || n == 0) {
            return;
        }
        if (k == 0) {
            scale(hc, beta);
            return;
        }
        OpenBlas.sgemm(transposeA, transposeB, m, n, k, alpha, OpenBlas.at(ha, 0), ac, OpenBlas.at(hb, 0), bc, beta,
                OpenBlas.at(hc, 0), n);
    }

    private static void scale(FloatTensor t, float s) {
        long n = t.numel();
        for (long i = 0; i < n; i++) {
            t.set(i, s == 0 ? 0 : t.get(i) * s);
        }
    }

    @Override
    public void linear(Tensor x, Tensor weight, Tensor bias, Tensor y) {
        FloatTensor hx = host(x);
        FloatTensor hw = host(weight);
        FloatTensor hy = host(y);
        int t = hx.rows(), in = hx.cols(), out = hw.rows();
        if (hw.cols() != in || hy.rows() != t || hy.cols() != out) {
            throw new IllegalArgumentException("linear shape mismatch: x " + hx.shape() + ", weight " + hw.shape()
                    + ", y " + hy.shape());
        }
        if (t == 0) {
            return;
        }
        OpenBlas.sgemm(false, true, t, out, in, 1f, OpenBlas.at(hx, 0), in, OpenBlas.at(hw, 0), in, 0f, OpenBlas.at(hy, 0), out);
        if (bias != null) {
            FloatTensor hb = host(bias);
            if (hb.numel() != out) {
                throw new IllegalArgumentException("linear bias " + hb.shape() + " does not match " + out + " outputs");
            }
            float[] b = hb.toArray();
            rows(t, (long) t * out, r -> {
                float[] row = new float[out];
                hy.copyTo((long) r * out, row, 0, out);
                for (int j = 0; j < out; j++) {
                    row[j] += b[j];
                }
                hy.copyFrom(row, 0, (long) r * out, out);
            });
        }
    }

    @Override
    public void rmsNorm(Tensor x, Tensor weight, double eps, Tensor y) {
        FloatTensor hx = host(x);
        FloatTensor hy = host(y);
        float[] w = host(weight).toArray();
        int n = w.length;
        if (hx.numel() % n != 0 || hy.numel() != hx.numel()) {
            throw new IllegalArgumentException("rmsNorm shape mismatch: x " + hx.shape() + ", weight [" + n + "], y " + hy.shape());
        }
        int rows = Math.toIntExact(hx.numel() / n);
        rows(rows, hx.numel(), r -> {
            float[] row = new float[n];
            hx.copyTo((long) r * n, row, 0, n);
            double ss = 0;
            for (float v : row) {
                ss += (double) v * v;
            }
            double inv = 1.0 / Math.sqrt(ss / n + eps);
            for (int j = 0; j < n; j++) {
                row[j] = w[j] * (float) (row[j] * inv);
            }
            hy.copyFrom(row, 0, (long) r * n, n);
        });
    }

    @Override
    public void rotary(Tensor x, int heads, int headDim, int[] positions, double theta) {
        FloatTensor hx = host(x);
        int width = heads * headDim;
        if (hx.cols() != width || hx.rows() != positions.length) {
            throw new IllegalArgumentException("rotary shape mismatch: x " + hx.shape() + " for " + positions.length
                    + " positions x " + heads + " heads x " + headDim);
        }
        RotaryTable table = RotaryTable.of(headDim, theta, positions);
        int half = headDim / 2;
        rows(positions.length, hx.numel(), t -> {
            float[] row = new float[width];
            hx.copyTo((long) t * width, row, 0, width);
            float[] cos = table.cos(positions[t]);
            float[] sin = table.sin(positions[t]);
            for (int h = 0; h < heads; h++) {
                int base = h * headDim;
                for (int i = 0; i < half; i++) {
                    float x1 = row[base + i];
                    float x2 = row[base + i + half];
                    row[base + i] = x1 * cos[i] - x2 * sin[i];
                    row[base + i + half] = x2 * cos[i] + x1 * sin[i];
                }
            }
            hx.copyFrom(row, 0, (long) t * width, width);
        });
    }

    @Override
    public void siluMul(Tensor gate, Tensor up, Tensor out) {
        FloatTensor g = host(gate), u = host(up), o = host(out);
        requireSameSize("siluMul", g, u, o);
        elementwise(g, u, o, (a, b) -> (float) (a / (1.0 + Math.exp(-a))) * b);
    }

    @Override
    public void add(Tensor a, Tensor b, Tensor out) {
        FloatTensor ha = host(a), hb = host(b), ho = host(out);
        requireSameSize("add", ha, hb, ho);
        elementwise(ha, hb, ho, Float::sum);
    }

    @Override
    public void scaleRows(Tensor x, float[] scale) {
        FloatTensor hx = host(x);
        int rows = hx.rows(), cols = hx.cols();
        if (scale.length != rows) {
            throw new IllegalArgumentException("scaleRows: " + scale.length + " scales for " + rows + " rows");
        }
        rows(rows, hx.numel(), r -> {
            float[] row = new float[cols];
            hx.copyTo((long) r * cols, row, 0, cols);
            for (int j = 0; j < cols; j++) {
                row[j] *= scale[r];
            }
            hx.copyFrom(row, 0, (long) r * cols, cols);
        });
    }

    @Override
    public void attention(Tensor q, Tensor k, Tensor v, Tensor out, AttentionShape shape, int[] starts, int[] lengths,
                          AttentionObserver observer) {
        FloatTensor hq = host(q), hk = host(k), hv = host(v), ho = host(out);
        int qWidth = shape.heads() * shape.headDim();
        int kvWidth = shape.kvHeads() * shape.headDim();
        if (hq.cols() != qWidth || ho.cols() != qWidth || hk.cols() != kvWidth || hv.cols() != kvWidth
                || hk.rows() != hq.rows() || hv.rows() != hq.rows() || ho.rows() != hq.rows() || starts.length != lengths.length) {
            throw new IllegalArgumentException("attention shape mismatch: q " + hq.shape() + ", k " + hk.shape() + ", v "
                    + hv.shape() + ", out " + ho.shape() + " for " + shape);
        }
        AttentionObserver obs = observer == null ? AttentionObserver.NONE : observer;
        int maxLen = 0;
        for (int s = 0; s < starts.length; s++) {
            if (starts[s] < 0 || lengths[s] < 0 || starts[s] + lengths[s] > hq.rows()) {
                throw new IllegalArgumentException("sequence " + s + " [" + starts[s] + ", +" + lengths[s] + ") outside "
                        + hq.rows() + " rows");
            }
            maxLen = Math.max(maxLen, lengths[s]);
        }
        float scale = (float) (1.0 / Math.sqrt(shape.headDim()));
        int hd = shape.headDim();
        try (FloatTensor scores = allocator.allocate(Shape.of((long) maxLen * maxLen), "attention scores")) {
            for (int s = 0; s < starts.length; s++) {
                int len = lengths[s];
                if (len == 0) {
                    continue;
                }
                long row0 = starts[s];
                for (int h = 0; h < shape.heads(); h++) {
                    int g = h / shape.groupSize();
                    // scores = scale * Q_h K_g^T  (rows of q/k strided by the full projection width)
                    OpenBlas.sgemm(false, true, len, len, hd, scale, OpenBlas.at(hq, row0 * qWidth + (long) h * hd), qWidth,
                            OpenBlas.at(hk, row0 * kvWidth + (long) g * hd), kvWidth, 0f, OpenBlas.at(scores, 0), len);
                    causalSoftmax(scores, len);
                    if (obs.wantsProbabilities()) {
                        float[] probs = new float[len * len];
                        scores.copyTo(0, probs, 0, probs.length);
                        obs.probabilities(s, h, len, probs);
                    }
                    // out_h = P V_g
                    OpenBlas.sgemm(false, false, len, hd, len, 1f, OpenBlas.at(scores, 0), len,
                            OpenBlas.at(hv, row0 * kvWidth + (long) g * hd), kvWidth, 0f,
                            OpenBlas.at(ho, row0 * qWidth + (long) h * hd), qWidth);
                }
            }
        }
    }

    /** Row-wise softmax over the causal prefix (j <= i) in fp64; entries above the diagonal become 0. */
    private static void causalSoftmax(FloatTensor scores, int len) {
        rows(len, (long) len * len / 2, i -> {
            float[] row = new float[len];
            scores.copyTo((long) i * len, row, 0, i + 1);
            float max = Float.NEGATIVE_INFINITY;
            for (int j = 0; j <= i; j++) {
                max = Math.max(max, row[j]);
            }
            double sum = 0;
            double[] e = new double[i + 1];
            for (int j = 0; j <= i; j++) {
                e[j] = Math.exp((double) row[j] - max);
                sum += e[j];
            }
            for (int j = 0; j <= i; j++) {
                row[j] = (float) (e[j] / sum);
            }
            for (int j = i + 1; j < len; j++) {
                row[j] = 0f;
            }
            scores.copyFrom(row, 0, (long) i * len, len);
        });
    }

    @Override
    public Routing route(Tensor logits, int topK, boolean renormalize, double renormEpsilon) {
        FloatTensor hl = host(logits);
        int tokens = hl.rows(), experts = hl.cols();
        if (topK < 1 || topK > experts) {
            throw new IllegalArgumentException("top-k " + topK + " for " + experts + " experts");
        }
        int[] chosen = new int[tokens * topK];
        float[] weights = new float[tokens * topK];
        rows(tokens, (long) tokens * experts, t -> {
            float[] row = new float[experts];
            hl.copyTo((long) t * experts, row, 0, experts);
            float max = Float.NEGATIVE_INFINITY;
            for (float v : row) {
                max = Math.max(max, v);
            }
            double sum = 0;
            double[] p = new double[experts];
            for (int e = 0; e < experts; e++) {
                p[e] = Math.exp((double) row[e] - max);
                sum += p[e];
            }
            float[] prob = new float[experts];
            for (int e = 0; e < experts; e++) {
                prob[e] = (float) (p[e] / sum);
            }
            boolean[] taken = new boolean[experts];
            double selected = 0;
            for (int i = 0; i < topK; i++) {
                int best = -1;
                for (int e = 0; e < experts; e++) {
                    if (!taken[e] && (best < 0 || prob[e] > prob[best])) {
                        best = e;
                    }
                }
                taken[best] = true;
                chosen[t * topK + i] = best;
                weights[t * topK + i] = prob[best];
                selected += prob[best];
            }
            if (renormalize) {
                for (int i = 0; i < topK; i++) {
                    weights[t * topK + i] = (float) (weights[t * topK + i] / (selected + renormEpsilon));
                }
            }
        });
        return new Routing(tokens, topK, experts, chosen, weights);
    }

    @Override
    public void gatherRows(Tensor src, int[] rows, Tensor dst) {
        FloatTensor hs = host(src), hd = host(dst);
        int cols = hs.cols();
        if (hd.cols() != cols || hd.rows() != rows.length) {
            throw new IllegalArgumentException("gatherRows: src " + hs.shape() + ", " + rows.length + " rows, dst " + hd.shape());
        }
        for (int i = 0; i < rows.length; i++) {
            hd.copyFrom(hs, (long) rows[i] * cols, (long) i * cols, cols);
        }
    }

    @Override
    public void scatterAddRows(Tensor src, int[] rows, float[] weights, Tensor dst) {
        FloatTensor hs = host(src), hd = host(dst);
        int cols = hs.cols();
        if (hd.cols() != cols || hs.rows() != rows.length || (weights != null && weights.length != rows.length)) {
            throw new IllegalArgumentException("scatterAddRows: src " + hs.shape() + ", " + rows.length + " rows, dst " + hd.shape());
        }
        float[] a = new float[cols];
        float[] b = new float[cols];
        for (int i = 0; i < rows.length; i++) {
            hs.copyTo((long) i * cols, a, 0, cols);
            hd.copyTo((long) rows[i] * cols, b, 0, cols);
            float w = weights == null ? 1f : weights[i];
            for (int j = 0; j < cols; j++) {
                b[j] += w * a[j];
            }
            hd.copyFrom(b, 0, (long) rows[i] * cols, cols);
        }
    }

    /**
     * BLAS for the two products, one token chunk at a time, then the epilogue in parallel over disjoint column blocks
     * (each block visits the rows in order, so the sums do not depend on the thread count).
     */
    @Override
    public void microExpertEnergy(Tensor xRouted, Tensor wGate, Tensor wUp, float[] routingWeight, double[] sumSq,
                                  double[] maxSq) {
        MicroExpertEnergy.check(xRouted, wGate, wUp, routingWeight, sumSq, maxSq);
        FloatTensor hx = host(xRouted), hg = host(wGate), hu = host(wUp);
        int n = hx.rows(), d = hx.cols(), f = hg.rows();
        if (n == 0 || f == 0) {
            return;
        }
        int chunk = MicroExpertEnergy.chunkRows(n, f);
        int blocks = (f + ENERGY_COLUMN_BLOCK - 1) / ENERGY_COLUMN_BLOCK;
        try (FloatTensor g = allocator.allocate(Shape.of(chunk, f), "energy gate");
             FloatTensor u = allocator.allocate(Shape.of(chunk, f), "energy up")) {
            for (int r0 = 0; r0 < n; r0 += chunk) {
                int m = Math.min(chunk, n - r0);
                int row0 = r0;
                OpenBlas.sgemm(false, true, m, f, d, 1f, OpenBlas.at(hx, (long) r0 * d), d, OpenBlas.at(hg, 0), d, 0f,
                        OpenBlas.at(g, 0), f);
                OpenBlas.sgemm(false, true, m, f, d, 1f, OpenBlas.at(hx, (long) r0 * d), d, OpenBlas.at(hu, 0), d, 0f,
                        OpenBlas.at(u, 0), f);
                rows(blocks, (long) m * f, b -> {
                    int c0 = b * ENERGY_COLUMN_BLOCK;
                    MicroExpertEnergy.accumulate(g, u, m, f, routingWeight, row0, c0, Math.min(f, c0 + ENERGY_COLUMN_BLOCK),
                            sumSq, maxSq);
                });
            }
        }
    }

    @Override
    public double[] crossEntropy(Tensor logits, int[] targets) {
        FloatTensor hl = host(logits);
        int rows = hl.rows(), vocab = hl.cols();
        if (targets.length != rows) {
            throw new IllegalArgumentException("crossEntropy: " + targets.length + " targets for " + rows + " rows");
        }
        double[] nll = new double[rows];
        rows(rows, hl.numel(), r -> {
            if (targets[r] < 0) {
                nll[r] = Double.NaN;
                return;
            }
            float[] row = new float[vocab];
            hl.copyTo((long) r * vocab, row, 0, vocab);
            double max = Double.NEGATIVE_INFINITY;
            for (float v : row) {
                max = Math.max(max, v);
            }
            double sum = 0;
            for (float v : row) {
                sum += Math.exp(v - max);
            }
            nll[r] = max + Math.log(sum) - row[targets[r]];
        });
        return nll;
    }

    @Override
    public void close() {
        // host memory belongs to the allocator's owner; nothing device-side to release
    }

    private static FloatTensor host(Tensor t) {
        if (t instanceof FloatTensor f) {
            return f;
        }
        throw new IllegalArgumentException("the cpu backend got a tensor of another backend: " + t);
    }

    private static void requireSameSize(String op, FloatTensor a, FloatTensor b, FloatTensor out) {
        if (a.numel() != b.numel() || a.numel() != out.numel()) {
            throw new IllegalArgumentException(op + ": sizes differ: " + a.shape() + ", " + b.shape() + ", " + out.shape());
        }
    }

    private interface FloatOp {
        float apply(float a, float b);
    }

    private static void elementwise(FloatTensor a, FloatTensor b, FloatTensor out, FloatOp op) {
        long n = a.numel();
        int chunk = 1 << 14;
        int chunks = Math.toIntExact((n + chunk - 1) / chunk);
        rows(chunks, n, c -> {
            long from = (long) c * chunk;
            int len = (int) Math.min(chunk, n - from);
            float[] x = new float[len];
            float[] y = new float[len];
            a.copyTo(from, x, 0, len);
            b.copyTo(from, y, 0, len);
            for (int i = 0; i < len; i++) {
                x[i] = op.apply(x[i], y[i]);
            }
            out.copyFrom(x, 0, from, len);
        });
    }

    /** Runs body over [0, count), in parallel when {@code work} (elements touched) is large. */
    private static void rows(int count, long work, java.util.function.IntConsumer body) {
        if (work >= PARALLEL_THRESHOLD && count > 1) {
            IntStream.range(0, count).parallel().forEach(body);
        } else {
            for (int i = 0; i < count; i++) {
                body.accept(i);
            }
        }
    }
}
