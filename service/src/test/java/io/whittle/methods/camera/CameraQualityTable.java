package io.whittle.methods.camera;

import io.whittle.compute.cpu.CpuBackend;
import io.whittle.methods.JobRunner;
import io.whittle.model.ModelSpec.Family;
import io.whittle.model.SyntheticModels;
import io.whittle.tensor.DType;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/** Experiment driver: perplexity of CAMERA-P and baselines on tokens sampled from the dense synthetic model. */
public final class CameraQualityTable {

    private static Map<String, String> withExport(Map<String, String> p) {
        Map<String, String> m = new LinkedHashMap<>(p);
        m.put("export", "dequantized");
        return m;
    }

    public static void main(String[] args) throws Exception {
        Path dir = Files.createTempDirectory("camera-quality");
        int layers = Integer.parseInt(args.length > 0 ? args[0] : "4");
        double ratio = Double.parseDouble(args.length > 1 ? args[1] : "0.25");
        SyntheticModels.Request req = new SyntheticModels.Request(Family.QWEN2_MOE, layers, 64, 128, 8, 2, 32, 64, 4, 2, 128,
                7, DType.BF16, 1);
        Path model = dir.resolve("model");
        SyntheticModels.write(req, model);
        long t = System.nanoTime();
        Path calib;
        Path eval;
        try (CpuBackend b = new CpuBackend()) {
            calib = CameraFixtures.tokens(dir.resolve("calib.json"), DenseSampler.sample(model, b, 32, 64, 1.0, 1));
            eval = CameraFixtures.tokens(dir.resolve("eval.json"), DenseSampler.sample(model, b, 64, 64, 1.0, 2));
        }
        System.out.printf("sampling %.1f s%n", (System.nanoTime() - t) / 1e9);
        Map<String, Map<String, String>> runs = new LinkedHashMap<>();
        runs.put("camera-p energy", Map.of("ratio", Double.toString(ratio)));
        runs.put("camera-p energy a=0", Map.of("ratio", Double.toString(ratio), "alpha", "0"));
        runs.put("magnitude", Map.of("ratio", Double.toString(ratio), "selection", "magnitude"));
        runs.put("random s0", Map.of("ratio", Double.toString(ratio), "selection", "random", "seed", "0"));
        runs.put("random s1", Map.of("ratio", Double.toString(ratio), "selection", "random", "seed", "1"));
        String g = "64";
        runs.put("Q camera-q gptq 3/2/1", Map.of("group_size", g));
        runs.put("Q camera-q rtn 3/2/1", Map.of("group_size", g, "quantizer", "rtn"));
        runs.put("Q uniform rtn 2", Map.of("group_size", g, "quantizer", "rtn", "bits", "2"));
        runs.put("Q uniform gptq 2", Map.of("group_size", g, "bits", "2"));
        int i = 0;
        for (var e : runs.entrySet()) {
            String method = e.getKey().startsWith("Q ") ? "camera-q" : "camera-p";
            JobRunner.JobResult r = CameraFixtures.run(method, model, calib, eval, e.getValue().containsKey("bits") || method.equals("camera-q") ? withExport(e.getValue()) : e.getValue(), dir.resolve("out" + i++));
            var ev = r.report().get("eval");
            System.out.printf("%-22s before %.4f after %.4f  mean rel err %.4f%n", e.getKey(),
                    ev.get("before").get("perplexity").asDouble(), ev.get("after").get("perplexity").asDouble(),
                    r.report().get("result").get("totals").get("mean_relative_error").asDouble());
        }
    }
}
