package io.whittle.methods.camera;

import io.whittle.forward.DenseSampler;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.whittle.compute.cpu.CpuBackend;
import io.whittle.model.ModelSpec.Family;
import io.whittle.model.SyntheticModels;
import io.whittle.tensor.DType;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import tools.jackson.databind.JsonNode;

/**
 * CAMERA against its baselines on a synthetic Qwen2-MoE, with perplexity measured on tokens sampled from the dense
 * model itself ({@link DenseSampler}): pruning a quarter of the micro-experts by energy must cost less perplexity
 * than pruning the same count by weight magnitude or at random, and CAMERA-Q at 2.25 bits per weight less than
 * uniform 2-bit RTN at the same budget.
 */
class CameraQualityTest {

    @TempDir
    static Path dir;
    static Path model;
    static Path calib;
    static Path eval;

    @BeforeAll
    static void sample() {
        model = dir.resolve("model");
        SyntheticModels.write(new SyntheticModels.Request(Family.QWEN2_MOE, 2, 64, 128, 8, 2, 32, 64, 4, 2, 128, 7, DType.BF16, 1),
                model);
        try (CpuBackend b = new CpuBackend()) {
            List<int[]> a = DenseSampler.sample(model, b, 3, 12, 1.0, 5);
            List<int[]> c = DenseSampler.sample(model, b, 3, 12, 1.0, 5);
            for (int s = 0; s < 3; s++) {
                assertArrayEquals(a.get(s), c.get(s), "the sampler is deterministic");
            }
            calib = CameraFixtures.tokens(dir.resolve("calib.json"), DenseSampler.sample(model, b, 12, 32, 1.0, 1));
            eval = CameraFixtures.tokens(dir.resolve("eval.json"), DenseSampler.sample(model, b, 24, 32, 1.0, 2));
        }
    }

    private static JsonNode report(String method, Map<String, String> params, String out) throws Exception {
        return CameraFixtures.run(method, model, calib, eval, params, dir.resolve(out)).report();
    }

    private static double after(JsonNode report) {
        return report.get("eval").get("after").get("perplexity").asDouble();
    }

    @Test
    void pruningByEnergyBeatsMagnitudeAndRandomAtAQuarter() throws Exception {
        double energy = after(report("camera-p", Map.of("ratio", "0.25"), "energy"));
        double magnitude = after(report("camera-p", Map.of("ratio", "0.25", "selection", "magnitude"), "magnitude"));
        double random = after(report("camera-p", Map.of("ratio", "0.25", "selection", "random", "seed", "3"), "random"));
        assertTrue(energy < magnitude, "energy " + energy + " vs magnitude " + magnitude);
        assertTrue(energy < random, "energy " + energy + " vs random " + random);
    }

    @Test
    void cameraQAt225BitsBeatsUniformRtnAtTheSameBudget() throws Exception {
        JsonNode camera = report("camera-q", Map.of("group_size", "64", "export", "dequantized"), "camera-q");
        JsonNode uniform = report("camera-q", Map.of("group_size", "64", "bits", "2", "quantizer", "rtn", "export", "dequantized"),
                "rtn2");
        // same nominal budget: 3x1/8 + 2x6/8 + 1x1/8 = 2 bits payload, the same groups' scales and zeros
        assertEquals(uniform.get("result").get("nominal_bpw").asDouble(), camera.get("result").get("nominal_bpw").asDouble(), 1e-12);
        assertEquals(2.0, camera.get("result").get("totals").get("achieved_bpw").get("payload_bpw").asDouble(), 0.01);
        assertTrue(after(camera) < after(uniform), "camera-q " + after(camera) + " vs uniform rtn " + after(uniform));
    }
}
