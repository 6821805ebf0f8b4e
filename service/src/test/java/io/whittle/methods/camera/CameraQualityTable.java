package io.whittle.methods.camera;

import io.whittle.forward.DenseSampler;

import io.whittle.compute.cpu.CpuBackend;
import io.whittle.methods.JobRunner;
import io.whittle.model.ModelSpec.Family;
import io.whittle.model.SyntheticModels;
import io.whittle.tensor.DType;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import tools.jackson.databind.JsonNode;

/**
 * Produces the quality table of docs/camera.md: a synthetic Qwen2-MoE (4 layers, hidden 128, 8 experts x 128
 * top-2, shared expert 256, vocabulary 256, bf16, seed 7), calibration (32 x 64 tokens, seed 1) and evaluation (64 x 64,
 * seed 2) sequences sampled from the dense model itself ({@link DenseSampler}, temperature 1), then CAMERA-P and
 * its baselines at the same prune count and CAMERA-Q against uniform quantization at the same nominal budget, all
 * through the JobRunner (CAMERA-Q with group_size 128). Deterministic; a few minutes on two cores.
 *
 * <p>Run: {@code java -cp service/target/test-classes:service/target/classes:$(cat cp.txt)
 * io.whittle.methods.camera.CameraQualityTable [layers=4]} (see {@link CameraAnalysisBench} for cp.txt).
 */
public final class CameraQualityTable {

    private CameraQualityTable() {
    }

    public static void main(String[] args) throws Exception {
        int layers = args.length > 0 ? Integer.parseInt(args[0]) : 4;
        Path dir = Files.createTempDirectory("camera-quality");
        Path model = dir.resolve("model");
        SyntheticModels.write(new SyntheticModels.Request(Family.QWEN2_MOE, layers, 128, 256, 8, 2, 128, 256, 4, 2, 256, 7,
                DType.BF16, 1), model);
        Path calib;
        Path eval;
        try (CpuBackend b = new CpuBackend()) {
            calib = CameraFixtures.tokens(dir.resolve("calib.json"), DenseSampler.sample(model, b, 32, 64, 1.0, 1));
            eval = CameraFixtures.tokens(dir.resolve("eval.json"), DenseSampler.sample(model, b, 64, 64, 1.0, 2));
        }
        record Run(String label, String method, Map<String, String> params) {
        }
        List<Run> runs = new ArrayList<>();
        for (String ratio : List.of("0.25", "0.5")) {
            runs.add(new Run("CAMERA-P energy (alpha 1), ratio " + ratio, "camera-p", Map.of("ratio", ratio)));
            runs.add(new Run("CAMERA-P energy (alpha 0), ratio " + ratio, "camera-p", Map.of("ratio", ratio, "alpha", "0")));
            runs.add(new Run("magnitude, ratio " + ratio, "camera-p", Map.of("ratio", ratio, "selection", "magnitude")));
            runs.add(new Run("random (seed 0), ratio " + ratio, "camera-p", Map.of("ratio", ratio, "selection", "random")));
            runs.add(new Run("random (seed 1), ratio " + ratio, "camera-p", Map.of("ratio", ratio, "selection", "random", "seed", "1")));
        }
        runs.add(new Run("CAMERA-Q GPTQ 3/2/1 @ 1/8,6/8,1/8", "camera-q", Map.of()));
        runs.add(new Run("CAMERA-Q RTN 3/2/1 @ 1/8,6/8,1/8", "camera-q", Map.of("quantizer", "rtn")));
        runs.add(new Run("uniform 2-bit GPTQ", "camera-q", Map.of("bits", "2")));
        runs.add(new Run("uniform 2-bit RTN", "camera-q", Map.of("bits", "2", "quantizer", "rtn")));
        System.out.println("| run | perplexity after | increase | mean MoE output rel. error | bpw (payload / with scales+zeros) |");
        System.out.println("|---|---|---|---|---|");
        int i = 0;
        Double before = null;
        for (Run r : runs) {
            Map<String, String> p = new LinkedHashMap<>(r.params());
            if (r.method().equals("camera-q")) {
                p.put("group_size", "128");
                p.put("export", "dequantized");
            }
            JobRunner.JobResult res = CameraFixtures.run(r.method(), model, calib, eval, p, dir.resolve("out" + i++));
            JsonNode ev = res.report().get("eval");
            JsonNode totals = res.report().get("result").get("totals");
            if (before == null) {
                before = ev.get("before").get("perplexity").asDouble();
                System.out.printf("| dense model | %.3f | | | 16 |%n", before);
            }
            double after = ev.get("after").get("perplexity").asDouble();
            String bpw = totals.has("achieved_bpw") ? String.format("%.3f / %.3f", totals.get("achieved_bpw").get("payload_bpw").asDouble(),
                    totals.get("achieved_bpw").get("with_overhead_bpw").asDouble()) : "";
            System.out.printf("| %s | %.3f | %+.3f | %.4f | %s |%n", r.label(), after, after - before,
                    totals.get("mean_relative_error").asDouble(), bpw);
        }
    }
}
