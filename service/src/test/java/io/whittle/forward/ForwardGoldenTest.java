package io.whittle.forward;

import static org.assertj.core.api.Assertions.assertThat;

import io.whittle.compute.cpu.CpuBackend;
import io.whittle.model.ModelSpec.Family;
import io.whittle.model.SyntheticModels;
import io.whittle.tensor.DType;
import java.io.InputStream;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;

/**
 * The engine's forward against an independent float64 implementation (tools/reference_forward.py, numpy), on tiny
 * synthetic models of every family: golden per-sequence mean NLLs were computed by the reference and committed;
 * this test re-synthesizes the same models (deterministic by seed) and must agree to 1e-6 relative (fp32 compute
 * against fp64: observed differences are around 1e-8).
 */
class ForwardGoldenTest {

    private static final double TOLERANCE = 1e-6;

    static Stream<JsonNode> cases() throws Exception {
        try (InputStream in = ForwardGoldenTest.class.getResourceAsStream("/golden/forward-golden.json")) {
            JsonNode root = JsonMapper.builder().build().readTree(in);
            List<JsonNode> out = new ArrayList<>();
            root.forEach(out::add);
            return out.stream();
        }
    }

    @ParameterizedTest(name = "{index}: {0}")
    @MethodSource("cases")
    void matchesFloat64Reference(JsonNode golden, @TempDir Path dir) {
        JsonNode c = golden.get("case");
        var request = new SyntheticModels.Request(Family.fromModelType(c.get("family").stringValue()), c.get("layers").asInt(),
                c.get("hidden").asInt(), c.get("intermediate").asInt(), c.path("experts").asInt(0), c.path("top_k").asInt(0),
                c.path("moe_intermediate").asInt(0), c.path("shared_intermediate").asInt(0), c.get("heads").asInt(),
                c.get("kv_heads").asInt(), c.get("vocab").asInt(), c.get("seed").asLong(),
                DType.parseFloatType(c.get("dtype").stringValue()), 2);
        Path model = dir.resolve("model");
        SyntheticModels.write(request, model);
        List<int[]> seqs = new ArrayList<>();
        for (JsonNode s : golden.get("input_ids")) {
            int[] ids = new int[s.size()];
            for (int i = 0; i < ids.length; i++) {
                ids[i] = s.get(i).asInt();
            }
            seqs.add(ids);
        }
        PipelineResult r;
        try (CpuBackend backend = new CpuBackend()) {
            r = Evaluation.evaluate(model, new TokenBatch(seqs), backend, LayerwisePipeline.Listener.NONE);
        }
        double[] actual = r.perSequenceMeanNll();
        JsonNode expected = golden.get("per_sequence_mean_nll");
        assertThat(actual).hasSize(expected.size());
        double num = 0;
        double den = 0;
        for (int i = 0; i < actual.length; i++) {
            double e = expected.get(i).asDouble();
            num += (actual[i] - e) * (actual[i] - e);
            den += e * e;
        }
        assertThat(Math.sqrt(num / den)).as("relative error of per-sequence mean NLL vs numpy float64").isLessThan(TOLERANCE);
    }
}
