package io.whittle.compute.bench;

import io.whittle.compute.AttentionShape;
import io.whittle.compute.Backend;
import io.whittle.compute.DeviceInfo;
import io.whittle.compute.DeviceTimer;
import io.whittle.compute.cuda.CudaBackend;
import io.whittle.forward.ForwardBenchmark;
import io.whittle.kernels.Gemm;
import io.whittle.model.ModelSpec;
import io.whittle.tensor.FloatTensor;
import io.whittle.tensor.HostAllocator;
import io.whittle.tensor.Shape;
import io.whittle.tensor.Tensor;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;

/**
 * Kernel-level benchmarks of a backend on one model's layer shapes, each reported against a ceiling measured on
 * the same device in the same run: memory-bound operations (norms, element-wise, rotary, routing, row
 * permutations, loss) as achieved bytes/s against the device-to-device copy bandwidth; matrix products and
 * attention as FLOP/s against a large square matrix product of the same precision. So a number means the same
 * on a noisy machine, and GPUs of a cluster compare over time ({@code whittle.benchmark.throughput} and
 * {@code whittle.benchmark.efficiency}, tagged op, shape and device, are published from {@link Result}).
 *
 * <p>Bytes count what an operation must read and write at least once (e.g. 12 bytes per element for
 * {@code out = a + b}); FLOPs count multiply-adds as two and causal attention over the lower triangle only.
 * Times are medians of {@code repeats} runs after a warm-up, from device events where the backend has them
 * ({@link DeviceTimer}) and the wall clock otherwise.
 */
public final class OpBenchmarks {

    /**
     * Token count (0: 4096 on a GPU, 256 on the CPU), repeats per measurement, whether to run a layer forward, and
     * whether the ceilings use small operands (a smoke run on an emulator; the ceilings are then not ceilings).
     */
    public record Options(int tokens, int repeats, boolean layerForward, boolean smallCeilings) {
        public Options {
            if (tokens < 0 || repeats < 1) {
                throw new IllegalArgumentException("benchmark options: tokens must be >= 0 and repeats >= 1, got " + tokens + ", " + repeats);
            }
        }

        public Options(int tokens, int repeats, boolean layerForward) {
            this(tokens, repeats, layerForward, false);
        }
    }

    /**
     * Ceilings measured in the run: copy bandwidth (bytes/s), fp32 and bf16 matrix rates (FLOP/s; NaN where not
     * measured), and the nominal bandwidth from the device's memory clock and bus width (NaN on the CPU).
     */
    public record Ceilings(double copyBytesPerSecond, double fp32FlopsPerSecond, double bf16FlopsPerSecond,
                           double nominalBytesPerSecond) {
    }

    /**
     * One measurement: what ran on which shape, its median time, the work done (bytes or FLOPs), the throughput in
     * {@code unit} (GB/s or GFLOP/s), the ceiling it is compared with and the fraction of it reached.
     */
    public record Result(String op, String shape, double medianMillis, double work, double throughput, String unit,
                         String ceiling, double ceilingValue, double efficiency) {
    }

    /** Everything one run measured. */
    public record Report(String backend, DeviceInfo device, String modelShape, int tokens, Ceilings ceilings, List<Result> results,
                         double seconds) {
    }

    private final Backend backend;
    private final int repeats;
    private boolean small;
    private final List<Result> results = new ArrayList<>();
    private long seed = 1;

    private OpBenchmarks(Backend backend, int repeats) {
        this.backend = backend;
        this.repeats = repeats;
    }

    private boolean onGpu() {
        return backend instanceof CudaBackend;
    }

    /** Runs every benchmark of the model's shapes on the backend. */
    public static Report run(Backend backend, ModelSpec spec, String shapeName, Options options, HostAllocator alloc) {
        long t0 = System.nanoTime();
        OpBenchmarks b = new OpBenchmarks(backend, options.repeats());
        b.small = options.smallCeilings();
        int tokens = options.tokens() > 0 ? options.tokens() : (b.onGpu() ? 4096 : 256);
        Ceilings ceilings = b.ceilings();
        b.ops(spec, tokens, ceilings);
        if (options.layerForward()) {
            b.layerForward(spec, shapeName, tokens, ceilings, alloc);
        }
        return new Report(backend.name(), backend.device(), shapeName, tokens, ceilings, List.copyOf(b.results),
                (System.nanoTime() - t0) / 1e9);
    }

    // ---- measurement -------------------------------------------------------------------------------------

    private double medianMillis(Runnable op) {
        op.run(); // warm-up: module loading, caches
        double[] t = new double[repeats];
        for (int i = 0; i < repeats; i++) {
            if (backend instanceof DeviceTimer timer) {
                t[i] = timer.timeMillis(op);
            } else {
                long s = System.nanoTime();
                op.run();
                t[i] = (System.nanoTime() - s) / 1e6;
            }
        }
        Arrays.sort(t);
        return t[repeats / 2];
    }

    private Tensor random(long... dims) {
        Shape s = Shape.of(dims);
        Tensor t = backend.allocate(s);
        if (t instanceof FloatTensor host) {
            fill(host, seed++, 1f); // a host backend: its tensors are host memory (its upload would be a view)
            return t;
        }
        t.close();
        try (FloatTensor h = FloatTensor.zeros(s)) {
            fill(h, seed++, 1f);
            return backend.upload(h); // a device backend copies
        }
    }

    /** Fast deterministic uniform values with standard deviation {@code std} (xorshift). */
    static void fill(FloatTensor t, long seed, float std) {
        long s = seed * 0x9E3779B97F4A7C15L + 1;
        float scale = (float) (std * Math.sqrt(3.0)) / (1 << 23);
        float[] buf = new float[1 << 16];
        for (long i = 0; i < t.numel(); i += buf.length) {
            int n = (int) Math.min(buf.length, t.numel() - i);
            for (int j = 0; j < n; j++) {
                s ^= s << 13;
                s ^= s >>> 7;
                s ^= s << 17;
                buf[j] = ((int) (s >>> 40) - (1 << 23)) * scale;
            }
            t.copyFrom(buf, 0, i, n);
        }
    }

    private void memoryBound(String op, String shape, double bytes, Ceilings c, Runnable body) {
        double ms = medianMillis(body);
        double gbs = bytes / (ms / 1e3) / 1e9;
        results.add(new Result(op, shape, ms, bytes, gbs, "GB/s", "copy bandwidth", c.copyBytesPerSecond() / 1e9,
                gbs / (c.copyBytesPerSecond() / 1e9)));
    }

    private void computeBound(String op, String shape, double flops, boolean bf16, Ceilings c, Runnable body) {
        double ms = medianMillis(body);
        double gflops = flops / (ms / 1e3) / 1e9;
        double ceiling = (bf16 ? c.bf16FlopsPerSecond() : c.fp32FlopsPerSecond()) / 1e9;
        results.add(new Result(op, shape, ms, flops, gflops, "GFLOP/s", bf16 ? "bf16 matmul" : "fp32 matmul", ceiling, gflops / ceiling));
    }

    private static String dims(long... d) {
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < d.length; i++) {
            sb.append(i == 0 ? "" : "x").append(d[i]);
        }
        return sb.toString();
    }

    // ---- ceilings ----------------------------------------------------------------------------------------

    private Ceilings ceilings() {
        long n = small ? 1L << 16 : onGpu() ? 64L << 20 : 16L << 20; // 256 MiB / 64 MiB per buffer: past every cache
        double copyMs;
        try (Tensor src = random(n); Tensor dst = backend.allocate(Shape.of(n))) {
            copyMs = medianMillis(() -> backend.copy(src, 0, dst, 0, n));
        }
        double copy = 8.0 * n / (copyMs / 1e3);
        int mn = small ? 128 : onGpu() ? 4096 : 1024;
        double fp32;
        try (Tensor a = random(mn, mn); Tensor b = random(mn, mn); Tensor c = backend.allocate(Shape.of(mn, mn))) {
            double ms = medianMillis(() -> matmul(a, b, c, false));
            fp32 = 2.0 * mn * mn * mn / (ms / 1e3);
        }
        double bf16 = Double.NaN;
        double nominal = Double.NaN;
        if (backend instanceof CudaBackend cuda) {
            nominal = cuda.stream().properties().nominalBandwidthBytesPerSecond();
            if (cuda.supportsBf16Matmul()) {
                int bn = small ? 256 : 8192;
                try (Tensor a = random(bn, bn); Tensor b = random(bn, bn); Tensor c = backend.allocate(Shape.of(bn, bn))) {
                    double ms = medianMillis(() -> matmul(a, b, c, true));
                    bf16 = 2.0 * bn * bn * bn / (ms / 1e3);
                }
            }
        }
        Ceilings ceilings = new Ceilings(copy, fp32, bf16, nominal);
        results.add(new Result("copy", dims(n), copyMs, 8.0 * n, copy / 1e9, "GB/s", "copy bandwidth", copy / 1e9, 1.0));
        results.add(new Result("matmul fp32", dims(mn, mn, mn), 2.0 * mn * mn * mn / fp32 * 1e3, 2.0 * mn * mn * mn, fp32 / 1e9,
                "GFLOP/s", "fp32 matmul", fp32 / 1e9, 1.0));
        if (!Double.isNaN(bf16)) {
            double bn = small ? 256 : 8192;
            results.add(new Result("matmul bf16", dims((long) bn, (long) bn, (long) bn), 2.0 * bn * bn * bn / bf16 * 1e3, 2.0 * bn * bn * bn,
                    bf16 / 1e9, "GFLOP/s", "bf16 matmul", bf16 / 1e9, 1.0));
        }
        return ceilings;
    }

    private void matmul(Tensor a, Tensor b, Tensor c, boolean bf16) {
        if (backend instanceof CudaBackend cuda) {
            cuda.matmul(bf16 ? Gemm.Precision.BF16 : Gemm.Precision.FP32, a, false, b, false, 1f, 0f, c);
        } else {
            backend.matmul(a, false, b, false, 1f, 0f, c);
        }
    }

    /** Whether the backend's own matmul (what linear uses) runs in bf16. */
    private boolean linearInBf16() {
        return backend instanceof CudaBackend cuda && cuda.options().matmulPrecision() == Gemm.Precision.BF16;
    }

    // ---- operations on the model's shapes ----------------------------------------------------------------

    private void ops(ModelSpec spec, int t, Ceilings c) {
        int h = spec.hiddenSize();
        int heads = spec.numHeads();
        int kvHeads = spec.numKvHeads();
        int hd = spec.headDim();
        int qDim = heads * hd;
        boolean moe = spec.moe() != null;
        int inter = moe ? spec.moe().expertIntermediate() : spec.intermediateSize();
        boolean bf16 = linearInBf16();

        try (Tensor x = random(t, h); Tensor w = random(h); Tensor y = backend.allocate(Shape.of(t, h))) {
            memoryBound("rmsNorm", dims(t, h), 4.0 * (2L * t * h + h), c, () -> backend.rmsNorm(x, w, 1e-6, y));
            memoryBound("add", dims(t, h), 12.0 * t * h, c, () -> backend.add(x, y, y));
            float[] scale = new float[t];
            Arrays.fill(scale, 1.0001f);
            memoryBound("scaleRows", dims(t, h), 8.0 * t * h, c, () -> backend.scaleRows(y, scale));
            try (Tensor wq = random(qDim, h); Tensor q = backend.allocate(Shape.of(t, qDim))) {
                computeBound("linear q_proj", dims(t, h, qDim), 2.0 * t * h * qDim, bf16, c, () -> backend.linear(x, wq, null, q));
                int[] positions = new int[t];
                for (int i = 0; i < t; i++) {
                    positions[i] = i % 4096;
                }
                memoryBound("rotary", dims(t, qDim), 8.0 * t * qDim, c, () -> backend.rotary(q, heads, hd, positions, 1e6));
            }
            int[] rows = new int[t];
            for (int i = 0; i < t; i++) {
                rows[i] = (int) ((i * 2654435761L) % t); // a permutation-like spread of rows
            }
            try (Tensor g = backend.allocate(Shape.of(t, h))) {
                memoryBound("gatherRows", dims(t, h), 8.0 * t * h, c, () -> backend.gatherRows(x, rows, g));
                int[] distinct = new int[t];
                for (int i = 0; i < t; i++) {
                    distinct[i] = t - 1 - i;
                }
                float[] weights = new float[t];
                Arrays.fill(weights, 0.5f);
                memoryBound("scatterAddRows", dims(t, h), 12.0 * t * h, c, () -> backend.scatterAddRows(g, distinct, weights, y));
            }
        }

        // attention: sequences of up to 2048 tokens
        int seqLen = Math.min(t, 2048);
        int seqs = Math.max(1, t / seqLen);
        int total = seqs * seqLen;
        int[] starts = new int[seqs];
        int[] lengths = new int[seqs];
        for (int s = 0; s < seqs; s++) {
            starts[s] = s * seqLen;
            lengths[s] = seqLen;
        }
        AttentionShape shape = new AttentionShape(heads, kvHeads, hd);
        try (Tensor q = random(total, qDim); Tensor k = random(total, (long) kvHeads * hd); Tensor v = random(total, (long) kvHeads * hd);
             Tensor o = backend.allocate(Shape.of(total, qDim))) {
            double flops = 4.0 * heads * hd * seqs * ((double) seqLen * (seqLen + 1) / 2);
            computeBound("attention", seqs + "x" + seqLen + " h" + heads + "/" + kvHeads + " d" + hd, flops, false, c,
                    () -> backend.attention(q, k, v, o, shape, starts, lengths, null));
        }

        // MLP / expert: gate-up products, SwiGLU, routing
        int te = moe ? Math.max(1, (int) Math.ceil((double) t * spec.moe().topK() / spec.moe().experts())) : t;
        try (Tensor xe = random(te, h); Tensor wg = random(inter, h); Tensor ge = backend.allocate(Shape.of(te, inter))) {
            computeBound(moe ? "linear expert gate" : "linear gate", dims(te, h, inter), 2.0 * te * h * inter, bf16, c,
                    () -> backend.linear(xe, wg, null, ge));
        }
        if (moe) {
            // CAMERA scoring of one expert's routed rows: both products and the phi^2 epilogue (fused on a GPU;
            // fp32 products on every backend, so the ceiling is the fp32 matrix rate)
            float[] a = new float[te];
            Arrays.fill(a, 0.5f);
            double[] sum = new double[inter];
            double[] max = new double[inter];
            try (Tensor xe = random(te, h); Tensor wg = random(inter, h); Tensor wu = random(inter, h)) {
                computeBound("microExpertEnergy", dims(te, h, inter), 4.0 * te * h * inter, false, c,
                        () -> backend.microExpertEnergy(xe, wg, wu, a, sum, max));
            }
        }
        try (Tensor g = random(t, inter); Tensor u = random(t, inter); Tensor out = backend.allocate(Shape.of(t, inter))) {
            memoryBound("siluMul", dims(t, inter), 12.0 * t * inter, c, () -> backend.siluMul(g, u, out));
        }
        if (moe) {
            int experts = spec.moe().experts();
            int topK = spec.moe().topK();
            try (Tensor logits = random(t, experts)) {
                memoryBound("route", dims(t, experts) + " top" + topK, 4.0 * t * experts + 8.0 * t * topK, c,
                        () -> backend.route(logits, topK, spec.moe().renormalize(), spec.moe().renormEpsilon()));
            }
        }
        int rows = Math.min(t, 512);
        int vocab = spec.vocabSize();
        try (Tensor logits = random(rows, vocab)) {
            int[] targets = new int[rows];
            for (int i = 0; i < rows; i++) {
                targets[i] = (i * 7919) % vocab;
            }
            memoryBound("crossEntropy", dims(rows, vocab), 4.0 * rows * vocab, c, () -> backend.crossEntropy(logits, targets));
        }
    }

    private void layerForward(ModelSpec spec, String shapeName, int tokens, Ceilings c, HostAllocator alloc) {
        int seqLen = Math.min(tokens, 512);
        int sequences = Math.max(1, tokens / seqLen);
        int layer = Math.min(1, spec.numLayers() - 1);
        ForwardBenchmark.Result r = ForwardBenchmark.run(shapeName, spec, layer, backend, sequences, seqLen, repeats, alloc);
        double flops = r.flopsPerToken() * sequences * seqLen;
        boolean bf16 = linearInBf16();
        double ceiling = (bf16 ? c.bf16FlopsPerSecond() : c.fp32FlopsPerSecond()) / 1e9;
        results.add(new Result("layer forward", String.format(Locale.ROOT, "layer %d, %dx%d tokens", layer, sequences, seqLen),
                r.medianSeconds() * 1e3, flops, r.modelGflops(), "GFLOP/s", bf16 ? "bf16 matmul" : "fp32 matmul", ceiling,
                r.modelGflops() / ceiling));
    }

    /** A fixed-width text table of a report (the GPU check prints it last). */
    public static String table(Report report) {
        StringBuilder sb = new StringBuilder();
        Ceilings c = report.ceilings();
        sb.append(String.format(Locale.ROOT, "device: %s (%s), shapes: %s, %d tokens%n", report.device().name(), report.backend(),
                report.modelShape(), report.tokens()));
        sb.append(String.format(Locale.ROOT, "ceilings: copy %.1f GB/s%s, fp32 matmul %.1f GFLOP/s%s%n", c.copyBytesPerSecond() / 1e9,
                Double.isNaN(c.nominalBytesPerSecond()) ? "" : String.format(Locale.ROOT, " (nominal %.1f)", c.nominalBytesPerSecond() / 1e9),
                c.fp32FlopsPerSecond() / 1e9,
                Double.isNaN(c.bf16FlopsPerSecond()) ? "" : String.format(Locale.ROOT, ", bf16 matmul %.1f GFLOP/s", c.bf16FlopsPerSecond() / 1e9)));
        sb.append(String.format(Locale.ROOT, "| %-20s | %-28s | %10s | %12s | %-8s | %10s |%n", "op", "shape", "ms", "throughput", "unit",
                "efficiency"));
        sb.append("|").append("-".repeat(22)).append("|").append("-".repeat(30)).append("|").append("-".repeat(12)).append("|")
                .append("-".repeat(14)).append("|").append("-".repeat(10)).append("|").append("-".repeat(12)).append("|\n");
        for (Result r : report.results()) {
            sb.append(String.format(Locale.ROOT, "| %-20s | %-28s | %10.3f | %12.1f | %-8s | %9.1f%% |%n", r.op(), r.shape(), r.medianMillis(),
                    r.throughput(), r.unit(), 100 * r.efficiency()));
        }
        return sb.toString();
    }
}
