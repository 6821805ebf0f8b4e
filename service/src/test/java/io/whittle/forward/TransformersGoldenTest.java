package io.whittle.forward;

import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.whittle.compute.cpu.CpuBackend;
import io.whittle.model.ModelSpec.Family;
import io.whittle.model.SyntheticModels;
import io.whittle.tensor.DType;
import java.io.InputStream;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;

/**
 * The engine against Hugging Face transformers itself: golden per-sequence NLLs computed by transformers (float64 and
 * float32) for the tiny models of forward-golden.json, made on a machine with PyTorch by
 * {@code tools/transformers_golden.py} and committed as {@code golden/transformers-golden.json}. Skipped, with that
 * reason, until such a file exists (the development machines have no PyTorch).
 */
class TransformersGoldenTest {

    @Test
    void matchesTransformers(@TempDir Path dir) throws Exception {
        JsonNode root;
        try (InputStream in = TransformersGoldenTest.class.getResourceAsStream("/golden/transformers-golden.json")) {
            assumeTrue(in != null, "no golden/transformers-golden.json yet: generate it with tools/prepare-transformers-golden.sh "
                    + "and tools/transformers_golden.py on a machine with PyTorch and transformers");
            root = JsonMapper.builder().build().readTree(in);
        }
        int compared = 0;
        try (CpuBackend backend = new CpuBackend()) {
            int i = 0;
            for (JsonNode g : root.get("cases")) {
                if (g.has("skipped")) {
                    i++;
                    continue;
                }
                JsonNode c = g.get("case");
                Path model = dir.resolve("case" + i++);
                SyntheticModels.write(new SyntheticModels.Request(Family.fromModelType(c.get("family").stringValue()),
                        c.get("layers").asInt(), c.get("hidden").asInt(), c.get("intermediate").asInt(), c.path("experts").asInt(0),
                        c.path("top_k").asInt(0), c.path("moe_intermediate").asInt(0), c.path("shared_intermediate").asInt(0),
                        c.get("heads").asInt(), c.get("kv_heads").asInt(), c.get("vocab").asInt(), c.get("seed").asLong(),
                        DType.parseFloatType(c.get("dtype").stringValue()), 2), model);
                List<int[]> seqs = new ArrayList<>();
                for (JsonNode s : g.get("input_ids")) {
                    int[] ids = new int[s.size()];
                    for (int t = 0; t < ids.length; t++) {
                        ids[t] = s.get(t).asInt();
                    }
                    seqs.add(ids);
                }
                double[] ours = Evaluation.evaluate(model, new TokenBatch(seqs), backend, LayerwisePipeline.Listener.NONE)
                        .perSequenceMeanNll();
                JsonNode ref = g.get("per_sequence_mean_nll_float64");
                for (int s = 0; s < ours.length; s++) {
                    double r = ref.get(s).asDouble();
                    assertThat(Math.abs(ours[s] - r) / Math.abs(r)).as("%s sequence %d: engine %s, transformers fp64 %s",
                            c.get("family").stringValue(), s, ours[s], r).isLessThan(1e-5);
                }
                compared++;
            }
        }
        assertThat(compared).as("cases compared").isPositive();
    }
}
