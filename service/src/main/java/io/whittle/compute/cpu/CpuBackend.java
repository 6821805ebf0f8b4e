package io.whittle.compute.cpu;

import io.whittle.compute.AttentionObserver;
import io.whittle.compute.AttentionShape;
import io.whittle.compute.Backend;
import io.whittle.compute.DeviceInfo;
import io.whittle.compute.MicroExpertEnergy;
import io.whittle.compute.Routing;
import io.whittle.compute.VisualLayout;
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

    /** Below this many elements a row-parallel loop costs more than it saves (fork-join wake-up, busy machines). */
    private static final long PARALLEL_THRESHOLD = 1 << 20;
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

    /**
     * Sets the BLAS thread count of the whole process (a benchmark knob: on an oversubscribed machine many small
     * multi-threaded GEMMs spend more time synchronising than computing). Affects every CPU backend.
     */
    public static void setBlasThreads(int threads) {
        if (threads < 1) {
            throw new IllegalArgumentException("BLAS threads must be >= 1, got " + threads);
        }
        OpenBlas.load();
        OpenBlas.setThreads(threads);
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
        checkAttentionShapes("attention", hq, hk, hv, ho, shape);
        AttentionObserver obs = observer == null ? AttentionObserver.NONE : observer;
        int maxLen = longestSequence("attention", starts, lengths, hq.rows());
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
    public double[] rowSumSquares(Tensor x) {
        FloatTensor hx = host(x);
        int rows = hx.rows(), cols = hx.cols();
        double[] out = new double[rows];
        rows(rows, hx.numel(), r -> {
            float[] row = new float[cols];
            hx.copyTo((long) r * cols, row, 0, cols);
            double ss = 0;
            for (float v : row) {
                ss += (double) v * v;
            }
            out[r] = ss;
        });
        return out;
    }

    @Override
    public double[] columnSumSquares(Tensor x) {
        FloatTensor hx = host(x);
        int rows = hx.rows(), cols = hx.cols();
        double[] out = new double[cols];
        float[] row = new float[cols];
        for (int r = 0; r < rows; r++) { // rows in order: the sums do not depend on the thread count
            hx.copyTo((long) r * cols, row, 0, cols);
            for (int c = 0; c < cols; c++) {
                out[c] += (double) row[c] * row[c];
            }
        }
        return out;
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

    // ---- visual-token pruning (YOPO) and the CLIP vision tower ----

    @Override
    public void layerNorm(Tensor x, Tensor weight, Tensor bias, double eps, Tensor y) {
        FloatTensor hx = host(x);
        FloatTensor hy = host(y);
        float[] w = host(weight).toArray();
        float[] b = bias == null ? null : host(bias).toArray();
        int n = w.length;
        if (hx.numel() % n != 0 || hy.numel() != hx.numel() || (b != null && b.length != n)) {
            throw new IllegalArgumentException("layerNorm shape mismatch: x " + hx.shape() + ", weight [" + n + "], bias "
                    + (b == null ? "none" : "[" + b.length + "]") + ", y " + hy.shape());
        }
        int rows = Math.toIntExact(hx.numel() / n);
        rows(rows, hx.numel(), r -> {
            float[] row = new float[n];
            hx.copyTo((long) r * n, row, 0, n);
            double mean = 0;
            for (float v : row) {
                mean += v;
            }
            mean /= n;
            double var = 0;
            for (float v : row) {
                var += (v - mean) * (v - mean);
            }
            double inv = 1.0 / Math.sqrt(var / n + eps);
            for (int j = 0; j < n; j++) {
                double z = (row[j] - mean) * inv * w[j];
                row[j] = (float) (b == null ? z : z + b[j]);
            }
            hy.copyFrom(row, 0, (long) r * n, n);
        });
    }

    @Override
    public void gelu(Tensor x, Tensor out) {
        FloatTensor hx = host(x), ho = host(out);
        requireSameSize("gelu", hx, hx, ho);
        double invSqrt2 = 1.0 / Math.sqrt(2.0);
        elementwise(hx, hx, ho, (a, unused) -> (float) (0.5 * a * (1.0 + Erf.erf(a * invSqrt2))));
    }

    @Override
    public void quickGelu(Tensor x, Tensor out) {
        FloatTensor hx = host(x), ho = host(out);
        requireSameSize("quickGelu", hx, hx, ho);
        elementwise(hx, hx, ho, (a, unused) -> (float) (a / (1.0 + Math.exp(-1.702 * a))));
    }

    @Override
    public void bidirectionalAttention(Tensor q, Tensor k, Tensor v, Tensor out, AttentionShape shape, int[] starts,
                                       int[] lengths) {
        FloatTensor hq = host(q), hk = host(k), hv = host(v), ho = host(out);
        checkAttentionShapes("bidirectionalAttention", hq, hk, hv, ho, shape);
        int maxLen = longestSequence("bidirectionalAttention", starts, lengths, hq.rows());
        HeadAttention att = new HeadAttention(hq, hk, hv, ho, shape);
        try (FloatTensor scores = allocator.allocate(Shape.of(Math.max(1L, (long) maxLen * maxLen)), "attention scores")) {
            for (int s = 0; s < starts.length; s++) {
                int st = starts[s], len = lengths[s];
                if (len == 0) {
                    continue;
                }
                for (int h = 0; h < shape.heads(); h++) {
                    att.attend(h, st, len, new int[] {st, len}, (i, j) -> INCLUDED, scores, null, s);
                }
            }
        }
    }

    @Override
    public void copyBlock(Tensor src, int srcRow, int srcCol, Tensor dst, int dstRow, int dstCol, int rows, int cols) {
        FloatTensor hs = host(src), hd = host(dst);
        if (rows < 0 || cols < 0 || srcRow < 0 || srcCol < 0 || dstRow < 0 || dstCol < 0
                || srcRow + rows > hs.rows() || srcCol + cols > hs.cols() || dstRow + rows > hd.rows() || dstCol + cols > hd.cols()) {
            throw new IllegalArgumentException("copyBlock: " + rows + "x" + cols + " block from (" + srcRow + ", " + srcCol + ") of "
                    + hs.shape() + " to (" + dstRow + ", " + dstCol + ") of " + hd.shape() + " is out of bounds");
        }
        int sc = hs.cols(), dc = hd.cols();
        for (int r = 0; r < rows; r++) {
            hd.copyFrom(hs, (long) (srcRow + r) * sc + srcCol, (long) (dstRow + r) * dc + dstCol, cols);
        }
    }

    @Override
    public void visualMaskedAttention(Tensor q, Tensor k, Tensor v, Tensor out, AttentionShape shape, VisualLayout layout,
                                      boolean[] keepHeads, boolean renormalize, AttentionObserver observer) {
        FloatTensor hq = host(q), hk = host(k), hv = host(v), ho = host(out);
        checkAttentionShapes("visualMaskedAttention", hq, hk, hv, ho, shape);
        int t = hq.rows();
        checkVisual("visualMaskedAttention", t, layout, keepHeads, shape);
        AttentionObserver obs = observer == null ? AttentionObserver.NONE : observer;
        int p = layout.prefix(), ve = layout.visualEnd(), hd = shape.headDim();
        HeadAttention att = new HeadAttention(hq, hk, hv, ho, shape);
        try (FloatTensor scores = allocator.allocate(Shape.of((long) t * t), "attention scores")) {
            for (int h = 0; h < shape.heads(); h++) {
                boolean keep = keepHeads[h];
                byte visualKey = keep ? INCLUDED : (renormalize ? EXCLUDED : ZEROED);
                KeyRule rule = (i, j) -> {
                    boolean vi = i >= p && i < ve, vj = j >= p && j < ve;
                    boolean allowed = vi && vj ? layout.windowAllows(i - p, j - p) : j <= i;
                    return !allowed ? EXCLUDED : (vj ? visualKey : INCLUDED);
                };
                att.attend(h, 0, t, new int[] {0, t}, rule, scores, obs, 0);
                if (!keep) {
                    zeroBlock(ho, p, layout.visual(), h * hd, hd);
                }
            }
        }
    }

    @Override
    public void visualPrunedAttention(Tensor q, Tensor k, Tensor v, Tensor out, AttentionShape shape, VisualLayout layout,
                                      boolean[] keepHeads) {
        FloatTensor hq = host(q), hk = host(k), hv = host(v), ho = host(out);
        checkAttentionShapes("visualPrunedAttention", hq, hk, hv, ho, shape);
        int t = hq.rows();
        checkVisual("visualPrunedAttention", t, layout, keepHeads, shape);
        int p = layout.prefix(), nv = layout.visual(), ve = layout.visualEnd(), hd = shape.headDim();
        int cols = layout.gridCols(), gridRows = layout.gridRows(), radius = layout.windowRadius();
        int text = t - ve;
        // visual queries go in blocks of `block` grid rows (fewer, larger GEMMs) against the grid rows their windows
        // reach: (block + 2r) rows of keys instead of the whole grid
        int block = Math.min(gridRows, 2 * radius + 1);
        int bandRows = Math.min(gridRows, block + 2 * radius) * cols;
        long need = Math.max((long) Math.max(p, 1) * Math.max(p, 1), (long) block * cols * (p + bandRows));
        need = Math.max(need, (long) Math.max(text, 1) * t);
        // grid coordinates of every visual token, so the window test is two comparisons
        int[] gridRow = new int[nv];
        int[] gridCol = new int[nv];
        for (int i = 0; i < nv; i++) {
            gridRow[i] = i / cols;
            gridCol[i] = i % cols;
        }
        HeadAttention att = new HeadAttention(hq, hk, hv, ho, shape);
        try (FloatTensor scores = allocator.allocate(Shape.of(need), "attention scores")) {
            for (int h = 0; h < shape.heads(); h++) {
                boolean keep = keepHeads[h];
                if (p > 0) {
                    att.attend(h, 0, p, new int[] {0, p}, (i, j) -> j <= i ? INCLUDED : EXCLUDED, scores, null, 0);
                }
                if (keep) {
                    // a block of grid rows of queries at a time against the grid rows their windows can reach
                    // (contiguous in the sequence because the grid is row-major), masked to each query's window
                    for (int r = 0; r < gridRows; r += block) {
                        int rows = Math.min(block, gridRows - r);
                        int first = Math.max(0, r - radius), last = Math.min(gridRows - 1, r + rows - 1 + radius);
                        int[] ranges = p > 0
                                ? new int[] {0, p, p + first * cols, (last - first + 1) * cols}
                                : new int[] {p + first * cols, (last - first + 1) * cols};
                        att.attend(h, p + r * cols, rows * cols, ranges, (i, j) -> j < p
                                || (Math.abs(gridRow[i - p] - gridRow[j - p]) <= radius && Math.abs(gridCol[i - p] - gridCol[j - p]) <= radius)
                                ? INCLUDED : EXCLUDED, scores, null, 0);
                    }
                } else {
                    zeroBlock(ho, p, nv, h * hd, hd);
                }
                if (text > 0) {
                    int[] ranges = keep ? new int[] {0, t} : (p > 0 ? new int[] {0, p, ve, text} : new int[] {ve, text});
                    att.attend(h, ve, text, ranges, (i, j) -> j < ve || j <= i ? INCLUDED : EXCLUDED, scores, null, 0);
                }
            }
        }
    }

    private static void checkAttentionShapes(String op, FloatTensor hq, FloatTensor hk, FloatTensor hv, FloatTensor ho,
                                             AttentionShape shape) {
        int qWidth = shape.heads() * shape.headDim();
        int kvWidth = shape.kvHeads() * shape.headDim();
        if (hq.cols() != qWidth || ho.cols() != qWidth || hk.cols() != kvWidth || hv.cols() != kvWidth
                || hk.rows() != hq.rows() || hv.rows() != hq.rows() || ho.rows() != hq.rows()) {
            throw new IllegalArgumentException(op + " shape mismatch: q " + hq.shape() + ", k " + hk.shape() + ", v "
                    + hv.shape() + ", out " + ho.shape() + " for " + shape);
        }
    }

    /** Checks that every packed sequence lies within {@code rows}; returns the longest length. */
    private static int longestSequence(String op, int[] starts, int[] lengths, int rows) {
        if (starts.length != lengths.length) {
            throw new IllegalArgumentException(op + ": " + starts.length + " starts for " + lengths.length + " lengths");
        }
        int maxLen = 0;
        for (int s = 0; s < starts.length; s++) {
            if (starts[s] < 0 || lengths[s] < 0 || starts[s] + lengths[s] > rows) {
                throw new IllegalArgumentException(op + ": sequence " + s + " [" + starts[s] + ", +" + lengths[s] + ") outside "
                        + rows + " rows");
            }
            maxLen = Math.max(maxLen, lengths[s]);
        }
        return maxLen;
    }

    private static void checkVisual(String op, int rows, VisualLayout layout, boolean[] keepHeads, AttentionShape shape) {
        if (layout.visualEnd() > rows) {
            throw new IllegalArgumentException(op + ": the visual tokens [" + layout.prefix() + ", " + layout.visualEnd()
                    + ") do not fit a sequence of " + rows + " rows");
        }
        if (keepHeads.length != shape.heads()) {
            throw new IllegalArgumentException(op + ": " + keepHeads.length + " head flags for " + shape.heads() + " heads");
        }
    }

    private static void zeroBlock(FloatTensor t, int row0, int rows, int col0, int cols) {
        float[] zeros = new float[cols];
        int width = t.cols();
        for (int r = row0; r < row0 + rows; r++) {
            t.copyFrom(zeros, 0, (long) r * width + col0, cols);
        }
    }

    /** How a (query row, key row) pair enters a head's attention. */
    private static final byte EXCLUDED = 0;
    private static final byte INCLUDED = 1;
    /** In the softmax denominator, then multiplied by zero (the released YOPO code's post-softmax masking). */
    private static final byte ZEROED = 2;

    private interface KeyRule {
        byte of(int queryRow, int keyRow);
    }

    /**
     * One head's attention for a contiguous block of query rows over a list of contiguous key row ranges: scores
     * by one GEMM per range into a [queries, keys] buffer, the rule applied, softmax in fp64 over the included
     * entries (a row with none outputs 0), then out = P V with one accumulating GEMM per range. Only the listed
     * key rows are ever read.
     */
    private static final class HeadAttention {
        final FloatTensor q, k, v, out;
        final int qWidth, kvWidth, hd, group;
        final float scale;

        HeadAttention(FloatTensor q, FloatTensor k, FloatTensor v, FloatTensor out, AttentionShape shape) {
            this.q = q;
            this.k = k;
            this.v = v;
            this.out = out;
            this.qWidth = shape.heads() * shape.headDim();
            this.kvWidth = shape.kvHeads() * shape.headDim();
            this.hd = shape.headDim();
            this.group = shape.groupSize();
            this.scale = (float) (1.0 / Math.sqrt(hd));
        }

        /** {@code ranges} holds (first row, count) pairs; observer rows are [queries, keys] of this call. */
        void attend(int h, int q0, int nq, int[] ranges, KeyRule rule, FloatTensor scores, AttentionObserver obs, int seq) {
            int g = h / group;
            int keys = 0;
            for (int r = 1; r < ranges.length; r += 2) {
                keys += ranges[r];
            }
            int[] keyRow = new int[keys];
            int col = 0;
            for (int r = 0; r < ranges.length; r += 2) {
                for (int i = 0; i < ranges[r + 1]; i++) {
                    keyRow[col++] = ranges[r] + i;
                }
            }
            int nk = keys;
            col = 0;
            for (int r = 0; r < ranges.length; r += 2) {
                int n = ranges[r + 1];
                if (n > 0) {
                    OpenBlas.sgemm(false, true, nq, n, hd, scale, OpenBlas.at(q, (long) q0 * qWidth + (long) h * hd), qWidth,
                            OpenBlas.at(k, (long) ranges[r] * kvWidth + (long) g * hd), kvWidth, 0f,
                            OpenBlas.at(scores, col), nk);
                }
                col += n;
            }
            rows(nq, (long) nq * nk, i -> {
                float[] row = new float[nk];
                scores.copyTo((long) i * nk, row, 0, nk);
                byte[] kind = new byte[nk];
                float max = Float.NEGATIVE_INFINITY;
                for (int j = 0; j < nk; j++) {
                    kind[j] = rule.of(q0 + i, keyRow[j]);
                    if (kind[j] != EXCLUDED) {
                        max = Math.max(max, row[j]);
                    }
                }
                if (max == Float.NEGATIVE_INFINITY) {
                    java.util.Arrays.fill(row, 0f);
                } else {
                    double sum = 0;
                    double[] e = new double[nk];
                    for (int j = 0; j < nk; j++) {
                        if (kind[j] != EXCLUDED) {
                            e[j] = Math.exp((double) row[j] - max);
                            sum += e[j];
                        }
                    }
                    for (int j = 0; j < nk; j++) {
                        row[j] = kind[j] == INCLUDED ? (float) (e[j] / sum) : 0f;
                    }
                }
                scores.copyFrom(row, 0, (long) i * nk, nk);
            });
            if (obs != null && obs.wantsProbabilities()) {
                float[] probs = new float[nq * nk];
                scores.copyTo(0, probs, 0, probs.length);
                obs.probabilities(seq, h, nk, probs);
            }
            col = 0;
            boolean first = true;
            for (int r = 0; r < ranges.length; r += 2) {
                int n = ranges[r + 1];
                if (n > 0) {
                    OpenBlas.sgemm(false, false, nq, hd, n, 1f, OpenBlas.at(scores, col), nk,
                            OpenBlas.at(v, (long) ranges[r] * kvWidth + (long) g * hd), kvWidth, first ? 0f : 1f,
                            OpenBlas.at(out, (long) q0 * qWidth + (long) h * hd), qWidth);
                    first = false;
                }
                col += n;
            }
            if (first) {
                zeroBlock(out, q0, nq, h * hd, hd);
            }
        }
    }
}
