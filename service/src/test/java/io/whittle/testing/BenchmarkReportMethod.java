package io.whittle.testing;

import io.whittle.methods.CompressionMethod;
import io.whittle.methods.JobContext;
import io.whittle.methods.MethodDescriptor;
import io.whittle.methods.ParamSpec;
import io.whittle.model.ModelSpec.Family;
import java.util.List;
import java.util.Set;
import tools.jackson.databind.node.ObjectNode;

/**
 * A stand-in for the {@code benchmark} method in the service tests ({@code test-benchmark-report}): writes one
 * {@code benchmark_results} entry with the op, throughput and efficiency given as parameters into its report, so a
 * test can follow a benchmark result through the worker into the {@code whittle.benchmark.*} gauges without
 * timing anything.
 */
public final class BenchmarkReportMethod implements CompressionMethod {

    public static final String NAME = "test-benchmark-report";

    private static final MethodDescriptor DESCRIPTOR = new MethodDescriptor(NAME,
            "Test method: reports one benchmark result taken from its parameters",
            List.of(ParamSpec.string("op", "gemm", "benchmarked operation"),
                    ParamSpec.number("throughput", 1.0, 0.0, false, null, false, "throughput in the op's unit per second"),
                    ParamSpec.number("efficiency", 0.5, 0.0, false, 1.0, false, "fraction of the device ceiling")),
            Set.of(Family.MIXTRAL, Family.LLAMA), false, false);

    @Override
    public MethodDescriptor descriptor() {
        return DESCRIPTOR;
    }

    @Override
    public void run(JobContext ctx) {
        ObjectNode result = ctx.report().putArray("benchmark_results").addObject();
        result.put("op", ctx.params().getString("op"));
        result.put("shape", ctx.spec().modelType());
        result.put("throughput", ctx.params().getDouble("throughput"));
        result.put("efficiency", ctx.params().getDouble("efficiency"));
    }
}
