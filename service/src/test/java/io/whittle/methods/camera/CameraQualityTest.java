package io.whittle.methods.camera;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.whittle.compute.cpu.CpuBackend;
import io.whittle.model.ModelSpec.Family;
import io.whittle.model.SyntheticModels;
import io.whittle.tensor.DType;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * CAMERA-P against the baselines on a synthetic Qwen2-MoE, with perplexity measured on tokens sampled from the
 * dense model itself ({@link DenseSampler}): pruning a quarter of the micro-experts by energy must cost less
 * perplexity than pruning the same count by weight magnitude or at random.
 */
class CameraQualityTest {

    @TempDir
    Path dir;

    private double perplexityAfter(Path model, Path calib, Path eval, Map<String, String> params, String out) throws Exception {
        return CameraFixtures.run("camera-p", model, calib, eval, params, dir.resolve(out)).report().get("eval").get("after")
                .get("perplexity").asDouble();
    }

    @Test
    void energyBeatsMagnitudeAndRandomAtAQuarter() throws Exception {
        Path model = dir.resolve("model");
        SyntheticModels.write(new SyntheticModels.Request(Family.QWEN2_MOE, 2, 64, 128, 8, 2, 32, 64, 4, 2, 128, 7, DType.BF16, 1),
                model);
        Path calib;
        Path eval;
        try (CpuBackend b = new CpuBackend()) {
            List<int[]> sampled = DenseSampler.sample(model, b, 12, 32, 1.0, 1);
            assertArrayEquals(sampled.get(3), DenseSampler.sample(model, b, 12, 32, 1.0, 1).get(3), "the sampler is deterministic");
            calib = CameraFixtures.tokens(dir.resolve("calib.json"), sampled);
            eval = CameraFixtures.tokens(dir.resolve("eval.json"), DenseSampler.sample(model, b, 24, 32, 1.0, 2));
        }
        double energy = perplexityAfter(model, calib, eval, Map.of("ratio", "0.25"), "energy");
        double magnitude = perplexityAfter(model, calib, eval, Map.of("ratio", "0.25", "selection", "magnitude"), "magnitude");
        double random = perplexityAfter(model, calib, eval, Map.of("ratio", "0.25", "selection", "random", "seed", "3"), "random");
        assertTrue(energy < magnitude, "energy " + energy + " vs magnitude " + magnitude);
        assertTrue(energy < random, "energy " + energy + " vs random " + random);
    }
}
