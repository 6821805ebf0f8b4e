package io.whittle.compute;

import static org.junit.platform.engine.discovery.DiscoverySelectors.selectClass;

import io.whittle.compute.bench.OpBenchmarks;
import io.whittle.compute.cpu.CpuBackend;
import io.whittle.compute.cuda.CudaBackend;
import io.whittle.compute.cuda.CudaBackendProvider;
import io.whittle.forward.ForwardBenchmark;
import io.whittle.kernels.CudaDevice;
import io.whittle.kernels.Gemm;
import io.whittle.methods.benchmark.BenchmarkMethod;
import io.whittle.model.ModelSpec;
import io.whittle.model.ModelSpecs;
import io.whittle.tensor.HostAllocator;
import java.io.InputStream;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import org.junit.platform.engine.TestExecutionResult;
import org.junit.platform.launcher.Launcher;
import org.junit.platform.launcher.LauncherDiscoveryRequest;
import org.junit.platform.launcher.TestExecutionListener;
import org.junit.platform.launcher.TestIdentifier;
import org.junit.platform.launcher.core.LauncherDiscoveryRequestBuilder;
import org.junit.platform.launcher.core.LauncherFactory;
import tools.jackson.databind.json.JsonMapper;
import tools.jackson.databind.node.ArrayNode;
import tools.jackson.databind.node.ObjectNode;

/**
 * The Java half of {@code kernels/gpu-check.sh}, run outside Maven from the carried payload: the device tests and
 * the backend conformance suites through the JUnit Platform launcher (on the GPU if one is usable; the CPU suite
 * and the CUDA suites' skip reasons otherwise), then the kernel benchmarks on the real models' layer shapes
 * against the ceilings measured in the same run, and one decoder layer's forward. Writes
 * {@code conformance.txt}, {@code benchmarks.json} and {@code summary.md} to the directory given as the first
 * argument and prints the summary last; exits 1 when a test failed.
 */
public final class GpuCheck {

    /** Shapes of the operation benchmarks (the CAMERA target model) and of the layer forward (smaller weights). */
    static final String OPS_SHAPE = "qwen2-57b-a14b";
    static final String LAYER_SHAPE = "qwen1.5-moe-a2.7b";

    /** WHITTLE_GPU_CHECK_SMOKE=true: tiny sizes, to run the GPU path end to end on the driver emulator. */
    static final boolean SMOKE = Boolean.parseBoolean(System.getenv("WHITTLE_GPU_CHECK_SMOKE"));

    private GpuCheck() {
    }

    /** Outcome of one test. */
    record Outcome(String status, String test, double seconds, String message) {
    }

    public static void main(String[] args) throws Exception {
        Path out = Path.of(args.length > 0 ? args[0] : "gpu-check-out");
        Files.createDirectories(out);
        long t0 = System.nanoTime();
        StringBuilder summary = new StringBuilder();

        DeviceInfo cuda = new CudaBackendProvider().probe();
        boolean gpu = cuda.usable();
        System.out.println("[gpu-check] CUDA backend: " + (gpu ? "usable" : "NOT usable: " + cuda.reason()));
        summary.append("## Device\n\n");
        if (gpu) {
            CudaDevice device = CudaDevice.open(0);
            summary.append("- ").append(device.properties().describe()).append('\n');
            summary.append("- ").append(device.memInfo()).append('\n');
            summary.append("- GEMM: ").append(cuda.blas()).append('\n');
            device.moduleOrigins().forEach((m, o) -> summary.append("- module ").append(m).append(": ").append(o).append('\n'));
        } else {
            summary.append("- no usable GPU: ").append(cuda.reason()).append("\n- benchmarks run on the CPU backend\n");
        }

        List<String> classes = new ArrayList<>(List.of("io.whittle.kernels.CudaStreamTest", "io.whittle.compute.CudaBackendConformanceTest",
                "io.whittle.compute.CudaBf16BackendConformanceTest"));
        if (!gpu) {
            classes.add(0, "io.whittle.compute.CpuBackendConformanceTest");
        }
        List<Outcome> outcomes = runTests(classes);
        try (PrintWriter w = new PrintWriter(Files.newBufferedWriter(out.resolve("conformance.txt"), StandardCharsets.UTF_8))) {
            for (Outcome o : outcomes) {
                w.printf(Locale.ROOT, "%-8s %-90s %7.2f s%s%n", o.status(), o.test(), o.seconds(),
                        o.message() == null ? "" : "\n         " + o.message().replace("\n", "\n         "));
            }
        }
        summary.append("\n## Conformance (relative error against the CPU backend, fresh random inputs, poisoned outputs)\n\n");
        summary.append("| suite | passed | failed | skipped |\n|---|---|---|---|\n");
        Map<String, int[]> perClass = new LinkedHashMap<>();
        for (Outcome o : outcomes) {
            String cls = o.test().substring(0, o.test().indexOf('#'));
            int[] c = perClass.computeIfAbsent(cls.substring(cls.lastIndexOf('.') + 1), k -> new int[3]);
            c[o.status().equals("PASSED") ? 0 : o.status().equals("FAILED") ? 1 : 2]++;
        }
        perClass.forEach((k, c) -> summary.append(String.format(Locale.ROOT, "| %s | %d | %d | %d |%n", k, c[0], c[1], c[2])));
        long failed = outcomes.stream().filter(o -> o.status().equals("FAILED")).count();
        for (Outcome o : outcomes) {
            if (o.status().equals("FAILED")) {
                summary.append("\nFAILED ").append(o.test()).append(": ").append(firstLines(o.message(), 3)).append('\n');
            }
        }

        JsonMapper json = JsonMapper.builder().build();
        ObjectNode bench = json.createObjectNode();
        ArrayNode runs = bench.putArray("runs");
        summary.append("\n## Benchmarks (each against a ceiling measured in this run)\n");
        ModelSpec ops = SMOKE ? tinyMoe() : shape(OPS_SHAPE);
        // the suites synchronise after every launch to name a faulting kernel; timings must not pay for that
        System.setProperty("whittle.cuda.sync-launches", "false");
        try (HostAllocator alloc = HostAllocator.root().newChild("gpu-check", Long.MAX_VALUE)) {
            List<String> labels = gpu ? List.of("cuda fp32 matmul", "cuda bf16 matmul") : List.of("cpu");
            for (String label : labels) {
                try (Backend b = gpu ? new CudaBackend(CudaDevice.open(0), alloc, new CudaBackend.Options(
                        label.contains("bf16") ? Gemm.Precision.BF16 : Gemm.Precision.FP32, Long.MAX_VALUE)) : new CpuBackend(alloc)) {
                    boolean last = label.equals(labels.get(labels.size() - 1));
                    if (last && b instanceof CudaBackend c) {
                        c.stream().timings().setEnabled(true); // per-kernel GPU time over this run (events around every launch)
                    }
                    System.out.println("[gpu-check] benchmarks on " + label + " ...");
                    OpBenchmarks.Report r = OpBenchmarks.run(b, ops, SMOKE ? "synthetic" : OPS_SHAPE, new OpBenchmarks.Options(SMOKE ? 64 : 0, SMOKE ? 1 : 5, false,
                            SMOKE), alloc);
                    ObjectNode run = runs.addObject();
                    run.put("label", label);
                    BenchmarkMethod.write(r, run);
                    summary.append("\n### ").append(label).append("\n\n```\n").append(OpBenchmarks.table(r)).append("```\n");
                    if (last && !SMOKE) {
                        layerForward(b, alloc, gpu, summary, run);
                    }
                    if (last && b instanceof CudaBackend c) {
                        kernelTimes(c, summary);
                    }
                } catch (RuntimeException | OutOfMemoryError e) {
                    System.out.println("[gpu-check] benchmarks on " + label + " failed: " + e);
                    e.printStackTrace(System.out);
                    summary.append("\n### ").append(label).append("\n\nFAILED: ").append(firstLines(String.valueOf(e), 3)).append('\n');
                    failed++;
                }
            }
        }
        Files.writeString(out.resolve("benchmarks.json"), json.writerWithDefaultPrettyPrinter().writeValueAsString(bench));
        summary.append(String.format(Locale.ROOT, "%nJava part: %.1f s%n", (System.nanoTime() - t0) / 1e9));
        Files.writeString(out.resolve("summary.md"), summary.toString());
        System.out.println();
        System.out.println(summary);
        System.exit(failed == 0 ? 0 : 1);
    }

    private static void layerForward(Backend b, HostAllocator alloc, boolean gpu, StringBuilder summary, ObjectNode run) {
        ModelSpec spec = shape(LAYER_SHAPE);
        int seqLen = gpu ? 512 : 64;
        int sequences = gpu ? 8 : 2;
        System.out.println("[gpu-check] layer forward " + LAYER_SHAPE + " ...");
        ForwardBenchmark.Result r = ForwardBenchmark.run(LAYER_SHAPE, spec, 1, b, sequences, seqLen, 3, alloc);
        String line = String.format(Locale.ROOT, "layer 1 of %s (%s), %dx%d tokens: %.1f ms, %.0f tokens/s, %.1f GFLOP/s "
                        + "(useful FLOPs; weights uploaded every call)", LAYER_SHAPE, r.moeLayer() ? "MoE" : "dense", sequences, seqLen,
                r.medianSeconds() * 1e3, r.tokensPerSecond(), r.modelGflops());
        summary.append("\n").append(line).append('\n');
        ObjectNode n = run.putObject("layer_forward");
        n.put("shape", LAYER_SHAPE);
        n.put("median_ms", r.medianSeconds() * 1e3);
        n.put("tokens_per_second", r.tokensPerSecond());
        n.put("model_gflops", r.modelGflops());
    }

    /** A small synthetic MoE layer (smoke runs on the emulator). */
    static ModelSpec tinyMoe() {
        return ModelSpecs.fromConfig(io.whittle.model.SyntheticModels.config(new io.whittle.model.SyntheticModels.Request(
                io.whittle.model.ModelSpec.Family.QWEN2_MOE, 2, 64, 96, 8, 2, 32, 48, 4, 2, 300, 1, io.whittle.tensor.DType.BF16, 1)),
                "synthetic");
    }

    /** GPU time per kernel over the run (CUDA events): what whittle.kernel.duration publishes. */
    private static void kernelTimes(CudaBackend c, StringBuilder summary) {
        List<io.whittle.kernels.KernelTimings.Stat> stats = c.stream().timings().collect();
        c.stream().timings().setEnabled(false);
        summary.append("\nGPU time per kernel over this run (CUDA events; warm-ups and ceilings included):\n\n");
        summary.append("| kernel | launches | total ms | max ms |\n|---|---|---|---|\n");
        stats.stream().limit(14).forEach(st -> summary.append(String.format(Locale.ROOT, "| %s | %d | %.2f | %.3f |%n", st.kernel(),
                st.launches(), st.totalMillis(), st.maxMillis())));
    }

    static ModelSpec shape(String name) {
        try (InputStream in = GpuCheck.class.getResourceAsStream("/shapes/" + name + ".json")) {
            if (in == null) {
                throw new IllegalStateException("shape " + name + " is not packaged");
            }
            return ModelSpecs.fromConfig(JsonMapper.builder().build().readTree(in), name);
        } catch (java.io.IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
    }

    private static String firstLines(String s, int n) {
        if (s == null) {
            return "";
        }
        String[] lines = s.split("\n");
        return String.join(" / ", java.util.Arrays.copyOf(lines, Math.min(n, lines.length)));
    }

    static List<Outcome> runTests(List<String> classNames) {
        LauncherDiscoveryRequestBuilder builder = LauncherDiscoveryRequestBuilder.request();
        for (String c : classNames) {
            builder.selectors(selectClass(c));
        }
        LauncherDiscoveryRequest request = builder.build();
        List<Outcome> outcomes = java.util.Collections.synchronizedList(new ArrayList<>());
        Map<String, Long> started = new ConcurrentHashMap<>();
        TestExecutionListener listener = new TestExecutionListener() {
            @Override
            public void executionStarted(TestIdentifier id) {
                started.put(id.getUniqueId(), System.nanoTime());
            }

            @Override
            public void executionSkipped(TestIdentifier id, String reason) {
                if (id.isTest()) {
                    outcomes.add(new Outcome("SKIPPED", name(id), 0, reason));
                }
            }

            @Override
            public void executionFinished(TestIdentifier id, TestExecutionResult result) {
                Long s = started.get(id.getUniqueId());
                double secs = s == null ? 0 : (System.nanoTime() - s) / 1e9;
                String msg = result.getThrowable().map(t -> t.getClass().getSimpleName() + ": " + t.getMessage()).orElse(null);
                if (id.isTest()) {
                    String status = switch (result.getStatus()) {
                        case SUCCESSFUL -> "PASSED";
                        case ABORTED -> "SKIPPED";
                        case FAILED -> "FAILED";
                    };
                    outcomes.add(new Outcome(status, name(id), secs, msg));
                    System.out.printf(Locale.ROOT, "[gpu-check] %-7s %s (%.2f s)%n", status, name(id), secs);
                } else if (result.getStatus() == TestExecutionResult.Status.FAILED) {
                    outcomes.add(new Outcome("FAILED", name(id) + "#(container)", secs, msg));
                    System.out.println("[gpu-check] FAILED container " + name(id) + ": " + msg);
                }
            }
        };
        Launcher launcher = LauncherFactory.create();
        launcher.execute(request, listener);
        return new ArrayList<>(outcomes);
    }

    private static String name(TestIdentifier id) {
        return id.getSource().map(s -> {
            if (s instanceof org.junit.platform.engine.support.descriptor.MethodSource m) {
                return m.getClassName() + "#" + m.getMethodName();
            }
            if (s instanceof org.junit.platform.engine.support.descriptor.ClassSource c) {
                return c.getClassName();
            }
            return id.getDisplayName();
        }).orElse(id.getDisplayName());
    }
}
