package io.whittle.methods.camera;

import io.whittle.compute.Backend;
import io.whittle.compute.Routing;
import io.whittle.compute.cpu.CpuBackend;
import io.whittle.forward.LayerObserver;
import io.whittle.forward.LayerWeights;
import io.whittle.model.ModelSpec.Mlp;
import io.whittle.model.ModelSpec.MoeNames;
import io.whittle.tensor.DType;
import io.whittle.tensor.FloatTensor;
import io.whittle.tensor.HostAllocator;
import io.whittle.tensor.Shape;
import io.whittle.tensor.Tensor;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.IntStream;

/**
 * Benchmark of CAMERA's analysis stage on one Qwen1.5-MoE-A2.7B-shaped MoE layer (60 experts x 1408, shared
 * expert 5632, hidden 2048, top-4, gated shared expert): the {@link EnergyScorer} pass over T calibration tokens
 * (routed tokens only per expert, plus all tokens through the shared expert), reported as GFLOP/s of the two
 * projections it computes against the BLAS rate measured in the same run at the same GEMM shapes.
 *
 * <p>Run (not part of the unit tests): {@code mvn -B -q -pl service -am test-compile} then
 * {@code java -Xmx2g -cp service/target/test-classes:service/target/classes:$(cat cp.txt)
 * io.whittle.methods.camera.CameraAnalysisBench [tokens=4096] [repeats=3]}, where cp.txt comes from
 * {@code mvn -B -q -pl service dependency:build-classpath -Dmdep.outputFile=$PWD/cp.txt}. Needs about 2.2 GB of
 * off-heap memory for the weights.
 */
public final class CameraAnalysisBench {

    static final int HIDDEN = 2048;
    static final int EXPERTS = 60;
    static final int WIDTH = 1408;
    static final int SHARED = 5632;
    static final int TOP_K = 4;

    private CameraAnalysisBench() {
    }

    /** Fills with a cheap deterministic uniform(-a, a) generator (Gaussian draws would take longer than the bench). */
    static void fill(FloatTensor t, long seed, double std) {
        float a = (float) (std * Math.sqrt(3));
        int chunk = 1 << 20;
        int chunks = (int) ((t.numel() + chunk - 1) / chunk);
        IntStream.range(0, chunks).parallel().forEach(c -> {
            long from = (long) c * chunk;
            int n = (int) Math.min(chunk, t.numel() - from);
            float[] buf = new float[n];
            long s = seed * 0x9E3779B97F4A7C15L + c * 0xBF58476D1CE4E5B9L + 1;
            for (int i = 0; i < n; i++) {
                s ^= s << 13;
                s ^= s >>> 7;
                s ^= s << 17;
                buf[i] = a * (2f * ((s >>> 40) / (float) (1L << 24)) - 1f);
            }
            t.copyFrom(buf, 0, from, n);
        });
    }

    public static void main(String[] args) {
        int tokens = args.length > 0 ? Integer.parseInt(args[0]) : 4096;
        int repeats = args.length > 1 ? Integer.parseInt(args[1]) : 3;
        try (HostAllocator alloc = HostAllocator.root().newChild("bench", Long.MAX_VALUE);
             CpuBackend backend = new CpuBackend(alloc)) {
            long t0 = System.nanoTime();
            String p = "model.layers.0.mlp.";
            Map<String, FloatTensor> tensors = new LinkedHashMap<>();
            List<Mlp> experts = new ArrayList<>();
            for (int e = 0; e < EXPERTS; e++) {
                String x = p + "experts." + e + ".";
                experts.add(new Mlp(x + "gate_proj.weight", x + "up_proj.weight", x + "down_proj.weight"));
            }
            Mlp shared = new Mlp(p + "shared_expert.gate_proj.weight", p + "shared_expert.up_proj.weight",
                    p + "shared_expert.down_proj.weight");
            MoeNames names = new MoeNames(p + "gate.weight", experts, shared, p + "shared_expert_gate.weight");
            int seed = 1;
            for (Mlp m : experts) {
                tensors.put(m.gate(), random(alloc, Shape.of(WIDTH, HIDDEN), seed++, 1 / Math.sqrt(HIDDEN)));
                tensors.put(m.up(), random(alloc, Shape.of(WIDTH, HIDDEN), seed++, 1 / Math.sqrt(HIDDEN)));
                tensors.put(m.down(), random(alloc, Shape.of(HIDDEN, WIDTH), seed++, 1 / Math.sqrt(WIDTH)));
            }
            tensors.put(shared.gate(), random(alloc, Shape.of(SHARED, HIDDEN), seed++, 1 / Math.sqrt(HIDDEN)));
            tensors.put(shared.up(), random(alloc, Shape.of(SHARED, HIDDEN), seed++, 1 / Math.sqrt(HIDDEN)));
            tensors.put(shared.down(), random(alloc, Shape.of(HIDDEN, SHARED), seed++, 1 / Math.sqrt(SHARED)));
            FloatTensor router = random(alloc, Shape.of(EXPERTS, HIDDEN), seed++, 1 / Math.sqrt(HIDDEN));
            FloatTensor x = random(alloc, Shape.of(tokens, HIDDEN), seed++, 1.0);
            System.out.printf("setup: %.1f s, %.2f GB of weights%n", (System.nanoTime() - t0) / 1e9,
                    tensors.values().stream().mapToLong(t -> t.numel() * 4).sum() / 1e9);

            Routing routing;
            try (Tensor logits = backend.allocate(Shape.of(tokens, EXPERTS))) {
                backend.linear(x, router, null, logits);
                routing = backend.route(logits, TOP_K, false, 0);
            }
            float[] sharedGate = new float[tokens];
            for (int t = 0; t < tokens; t++) {
                sharedGate[t] = 0.5f + 0.4f * (float) Math.sin(t);
            }
            MoePool pool = new MoePool(0, names, EXPERTS, WIDTH, SHARED, HIDDEN, true);
            double flops = 4.0 * HIDDEN * ((double) tokens * TOP_K * WIDTH + (double) tokens * SHARED);

            try (LayerWeights weights = LayerWeights.of(0, tensors, DType.BF16)) {
                // interleave the pass and its bare GEMMs so that both see the same machine load; keep the best of each
                double best = Double.MAX_VALUE;
                double bestGemm = Double.MAX_VALUE;
                double peak = 0;
                double bestRatio = 0;
                for (int r = 0; r < repeats; r++) {
                    long t = System.nanoTime();
                    try (EnergyScorer scorer = new EnergyScorer(pool, weights, backend, alloc, 0)) {
                        scorer.moeInput(new LayerObserver.MoeBlockInput(0, 0, x, routing, sharedGate));
                        scorer.result();
                    }
                    double s = (System.nanoTime() - t) / 1e9;
                    best = Math.min(best, s);
                    double g = bareGemms(backend, pool, weights, x, routing);
                    bestGemm = Math.min(bestGemm, g);
                    bestRatio = Math.max(bestRatio, g / s);
                    double large = blasRate(backend, alloc, 2048, 4096, 1);
                    peak = Math.max(peak, large);
                    System.out.printf("repeat %d: analysis %.3f s (%.1f GFLOP/s), the same GEMMs alone %.3f s (%.1f GFLOP/s), "
                            + "large sgemm %.1f GFLOP/s%n", r, s, flops / s / 1e9, g, flops / g / 1e9, large);
                }
                System.out.printf("layer: %d experts x %d, shared %d, hidden %d, top-%d; %d tokens (%d routed rows, %.0f per expert)%n",
                        EXPERTS, WIDTH, SHARED, HIDDEN, TOP_K, tokens, tokens * TOP_K, (double) tokens * TOP_K / EXPERTS);
                System.out.printf("analysis: %.1f GFLOP in %.3f s = %.1f GFLOP/s%n", flops / 1e9, best, flops / best / 1e9);
                System.out.printf("BLAS in this run: the pass's own GEMMs (gather + sgemm, no epilogue) %.1f GFLOP/s; "
                        + "large sgemm [2048 x %d] x [4096 x %d]^T %.1f GFLOP/s%n", flops / bestGemm / 1e9, HIDDEN, HIDDEN, peak);
                System.out.printf("efficiency: %.0f%% of the same GEMMs (best of each), %.0f%% within one repeat at best, "
                                + "%.0f%% of large-GEMM BLAS (%s, %d threads)%n", 100 * bestGemm / best, 100 * bestRatio,
                        100 * flops / best / 1e9 / peak, backend.device().blas(), backend.device().threads());
            }
            tensors.values().forEach(FloatTensor::close);
            router.close();
            x.close();
        }
    }

    /** Seconds for exactly the products the pass computes (gather of routed rows, gate and up GEMMs), nothing else. */
    private static double bareGemms(Backend backend, MoePool pool, LayerWeights weights, FloatTensor x, Routing routing) {
        long t = System.nanoTime();
        Routing.ExpertRows[] rows = routing.byExpert();
        for (int g = 0; g < pool.groupCount(); g++) {
            Mlp mlp = pool.groupMlp(g);
            int width = pool.groupWidth(g);
            if (pool.isSharedGroup(g)) {
                gemmPair(backend, x, weights, mlp, width);
                continue;
            }
            Routing.ExpertRows r = rows[pool.expertOfGroup(g)];
            if (r.count() == 0) {
                continue;
            }
            try (Tensor xe = backend.allocate(Shape.of(r.count(), HIDDEN))) {
                backend.gatherRows(x, r.rows(), xe);
                gemmPair(backend, xe, weights, mlp, width);
            }
        }
        return (System.nanoTime() - t) / 1e9;
    }

    private static void gemmPair(Backend backend, Tensor x, LayerWeights weights, Mlp mlp, int width) {
        int chunk = io.whittle.compute.MicroExpertEnergy.chunkRows(x.rows(), width);
        try (Tensor g = backend.allocate(Shape.of(chunk, width));
             Tensor u = backend.allocate(Shape.of(chunk, width))) {
            for (int r0 = 0; r0 < x.rows(); r0 += chunk) {
                int m = Math.min(chunk, x.rows() - r0);
                backend.linear(x.rowSlice(r0, m), weights.get(mlp.gate()), null, g.rowSlice(0, m));
                backend.linear(x.rowSlice(r0, m), weights.get(mlp.up()), null, u.rowSlice(0, m));
            }
        }
    }

    private static FloatTensor random(HostAllocator alloc, Shape shape, long seed, double std) {
        FloatTensor t = alloc.allocate(shape, "bench");
        fill(t, seed, std);
        return t;
    }

    /** Best-of-repeats sgemm rate for y[rows, width] = x[rows, hidden] w[width, hidden]^T. */
    private static double blasRate(Backend backend, HostAllocator alloc, int rows, int width, int repeats) {
        try (FloatTensor x = random(alloc, Shape.of(rows, HIDDEN), 99, 1);
             FloatTensor w = random(alloc, Shape.of(width, HIDDEN), 98, 0.02);
             FloatTensor y = alloc.allocate(Shape.of(rows, width), "bench y")) {
            double flops = 2.0 * rows * HIDDEN * width;
            int inner = Math.max(1, (int) (20e9 / flops)); // ~20 GFLOP per timing
            double best = Double.MAX_VALUE;
            for (int r = 0; r < repeats; r++) {
                long t = System.nanoTime();
                for (int i = 0; i < inner; i++) {
                    backend.linear(x, w, null, y);
                }
                best = Math.min(best, (System.nanoTime() - t) / 1e9 / inner);
            }
            return flops / best / 1e9;
        }
    }
}
