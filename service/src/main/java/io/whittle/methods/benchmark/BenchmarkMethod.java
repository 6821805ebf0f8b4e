package io.whittle.methods.benchmark;

import io.whittle.compute.bench.OpBenchmarks;
import io.whittle.methods.CompressionMethod;
import io.whittle.methods.JobContext;
import io.whittle.methods.MethodDescriptor;
import io.whittle.methods.ParamSpec;
import io.whittle.model.ModelSpec.Family;
import java.util.EnumSet;
import java.util.List;
import tools.jackson.databind.json.JsonMapper;
import tools.jackson.databind.node.ArrayNode;
import tools.jackson.databind.node.ObjectNode;

/**
 * The {@code benchmark} job: kernel benchmarks of the job's backend (whichever the worker has) on the model's
 * layer shapes, and optionally one decoder layer's forward, each reported against ceilings measured on the same
 * device in the same run ({@link OpBenchmarks}). Reads only the model's shapes (weights are random) and writes no
 * model, only {@code report.json}.
 *
 * <p>Report fields under {@code result} (what the service publishes as metrics):
 * <ul>
 *   <li>{@code results[]}: {@code op}, {@code shape}, {@code median_ms}, {@code work}, {@code throughput} with its
 *       {@code unit} (GB/s or GFLOP/s), {@code ceiling} (its name), {@code ceiling_value} and {@code efficiency}
 *       (throughput / ceiling);</li>
 *   <li>{@code whittle.benchmark.throughput} = {@code results[].throughput}, tags {@code op}, {@code shape},
 *       {@code unit} and {@code device} = {@code device.name};</li>
 *   <li>{@code whittle.benchmark.efficiency} = {@code results[].efficiency}, tags {@code op}, {@code shape},
 *       {@code device};</li>
 *   <li>{@code ceilings}: the copy bandwidth, fp32 and (GPU) bf16 matrix rates, nominal bandwidth (GPU).</li>
 * </ul>
 */
public final class BenchmarkMethod implements CompressionMethod {

    private static final JsonMapper JSON = JsonMapper.builder().build();

    static final MethodDescriptor DESCRIPTOR = new MethodDescriptor("benchmark",
            "Kernel and layer benchmarks on the model's layer shapes (random weights), each against the copy bandwidth or matrix rate "
                    + "measured on the same device; writes no model",
            List.of(ParamSpec.integer("tokens", 0, 0, 1 << 20, "Tokens per operation; 0 picks 4096 on a GPU and 256 on the CPU"),
                    ParamSpec.integer("repeats", 5, 1, 100, "Timed runs per measurement after one warm-up; the median is reported"),
                    ParamSpec.bool("layer_forward", true, "Also time one decoder layer's forward pass")),
            EnumSet.allOf(Family.class), false, false);

    @Override
    public MethodDescriptor descriptor() {
        return DESCRIPTOR;
    }

    @Override
    public void run(JobContext ctx) {
        OpBenchmarks.Options options = new OpBenchmarks.Options(ctx.params().getInt("tokens"), ctx.params().getInt("repeats"),
                ctx.params().getBoolean("layer_forward"));
        String shape = ctx.modelDirectory().getFileName().toString();
        ctx.progress().update("benchmark", -1, ctx.spec().numLayers(), 0.0);
        OpBenchmarks.Report report = OpBenchmarks.run(ctx.backend(), ctx.spec(), shape, options, ctx.allocator());
        ctx.addStageSeconds("benchmark", report.seconds());
        write(report, ctx.report());
    }

    /** The report's JSON form (also used by the GPU check). NaN (not measured) values are left out. */
    public static void write(OpBenchmarks.Report report, ObjectNode out) {
        out.put("backend", report.backend());
        out.set("device", JSON.valueToTree(report.device()));
        out.put("model_shape", report.modelShape());
        out.put("tokens", report.tokens());
        out.put("seconds", report.seconds());
        ObjectNode c = out.putObject("ceilings");
        putIfMeasured(c, "copy_bandwidth_gbs", report.ceilings().copyBytesPerSecond() / 1e9);
        putIfMeasured(c, "nominal_bandwidth_gbs", report.ceilings().nominalBytesPerSecond() / 1e9);
        putIfMeasured(c, "fp32_matmul_gflops", report.ceilings().fp32FlopsPerSecond() / 1e9);
        putIfMeasured(c, "bf16_matmul_gflops", report.ceilings().bf16FlopsPerSecond() / 1e9);
        // the workers publish each entry as the whittle.benchmark.* gauges (WorkerPool reads result.benchmark_results)
        ArrayNode results = out.putArray("benchmark_results");
        for (OpBenchmarks.Result r : report.results()) {
            ObjectNode n = results.addObject();
            n.put("op", r.op());
            n.put("shape", r.shape());
            n.put("device", report.device().name());
            n.put("median_ms", r.medianMillis());
            n.put("work", r.work());
            putIfMeasured(n, "throughput", r.throughput());
            n.put("unit", r.unit());
            n.put("ceiling", r.ceiling());
            putIfMeasured(n, "ceiling_value", r.ceilingValue());
            putIfMeasured(n, "efficiency", r.efficiency());
        }
        ObjectNode metrics = out.putObject("metrics");
        metrics.put("whittle.benchmark.throughput", "benchmark_results[].throughput; tags op, shape, device");
        metrics.put("whittle.benchmark.efficiency", "benchmark_results[].efficiency; tags op, shape, device");
        out.put("table", OpBenchmarks.table(report));
    }

    private static void putIfMeasured(ObjectNode n, String field, double v) {
        if (Double.isFinite(v)) {
            n.put(field, v);
        }
    }
}
