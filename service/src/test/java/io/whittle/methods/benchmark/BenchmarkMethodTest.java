package io.whittle.methods.benchmark;

import static org.assertj.core.api.Assertions.assertThat;

import io.whittle.methods.JobRequest;
import io.whittle.methods.JobRunner;
import io.whittle.model.ModelSpec.Family;
import io.whittle.model.SyntheticModels;
import io.whittle.tensor.DType;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import tools.jackson.databind.JsonNode;

/** The benchmark job end to end on the CPU: report fields, ceilings and that every result is a real measurement. */
class BenchmarkMethodTest {

    @Test
    void runsAsAJobAndReportsEveryOpAgainstItsCeiling(@TempDir Path dir) throws Exception {
        Path model = dir.resolve("tiny-moe");
        SyntheticModels.write(new SyntheticModels.Request(Family.QWEN2_MOE, 2, 64, 96, 8, 2, 32, 48, 4, 2, 300, 3, DType.BF16, 1), model);
        Path out = dir.resolve("out");
        JobRequest request = new JobRequest("benchmark", model, null, null, Map.of("tokens", "64", "repeats", "1"), out, "cpu", null);
        JobRunner.JobResult result = JobRunner.prepare(request).run(null, null);
        JsonNode r = JobRunner.readReport(result.reportFile()).get("result");

        assertThat(r.get("backend").stringValue()).isEqualTo("cpu");
        assertThat(r.get("model_shape").stringValue()).isEqualTo("tiny-moe");
        assertThat(r.get("tokens").asInt()).isEqualTo(64);
        assertThat(r.get("ceilings").get("copy_bandwidth_gbs").asDouble()).isPositive();
        assertThat(r.get("ceilings").get("fp32_matmul_gflops").asDouble()).isPositive();
        assertThat(r.get("ceilings").has("bf16_matmul_gflops")).as("no bf16 ceiling on the CPU").isFalse();
        List<String> ops = new ArrayList<>();
        for (JsonNode n : r.get("benchmark_results")) {
            ops.add(n.get("op").stringValue());
            assertThat(n.get("median_ms").asDouble()).as(n.toString()).isPositive();
            assertThat(n.get("throughput").asDouble()).as(n.toString()).isPositive();
            assertThat(n.get("efficiency").asDouble()).as(n.toString())
                    .isCloseTo(n.get("throughput").asDouble() / n.get("ceiling_value").asDouble(), org.assertj.core.data.Percentage.withPercentage(1e-6));
            assertThat(n.get("unit").stringValue()).isIn("GB/s", "GFLOP/s");
            assertThat(n.get("device").stringValue()).as("the workers tag the gauges with it").isNotBlank();
        }
        assertThat(ops).contains("copy", "matmul fp32", "rmsNorm", "add", "linear q_proj", "rotary", "attention", "linear expert gate",
                "microExpertEnergy", "siluMul", "route", "gatherRows", "scatterAddRows", "crossEntropy", "layer forward");
        assertThat(r.get("metrics").has("whittle.benchmark.throughput")).isTrue();
        assertThat(r.get("table").stringValue()).contains("| op").contains("attention");
        try (var files = Files.list(result.output())) {
            assertThat(files.map(p -> p.getFileName().toString())).containsExactly("report.json");
        }
    }
}
