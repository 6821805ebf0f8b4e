package io.whittle.cli;

import io.whittle.methods.visual.VisualFlops;
import io.whittle.methods.visual.VisualPlan;
import io.whittle.model.ModelSpec;
import io.whittle.model.ModelSpecs;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;
import tools.jackson.databind.json.JsonMapper;
import tools.jackson.databind.node.ObjectNode;

@Command(name = "visual-flops", description = "Visual-token FLOPs of a LLaVA model's prefill, dense and with visual-prune's "
        + "strategies, from config.json alone (the YOPO paper's count; JSON).")
final class VisualFlopsCommand implements Callable<Integer> {

    private static final Set<String> PARAMS = Set.of("window", "drop_layer", "heads_kept", "ffn_visual_fraction");

    @Spec
    picocli.CommandLine.Model.CommandSpec spec;

    @Option(names = "--config", required = true, description = "config.json of a llava model (or its model directory).")
    Path config;
    @Option(names = "--param", description = "window=5, drop_layer=L/2, heads_kept=H (average kept heads per layer, applied "
            + "uniformly), ffn_visual_fraction=1.0 (repeatable).")
    List<String> params;
    @Option(names = "--plan", description = "A visual-plan.json whose per-layer kept heads, window and drop layer are used "
            + "(--param values still override).")
    Path plan;

    @Override
    public Integer call() throws Exception {
        Path file = Files.isDirectory(config) ? config.resolve("config.json") : config;
        if (!Files.isRegularFile(file)) {
            throw new IllegalArgumentException("config " + file + " does not exist");
        }
        ModelSpec model = ModelSpecs.fromConfig(JsonMapper.builder().build().readTree(Files.readString(file)), file.toString());
        if (model.family() != ModelSpec.Family.LLAVA) {
            throw new IllegalArgumentException("visual-flops needs a llava config, got model_type '" + model.modelType() + "'");
        }
        Map<String, String> values = new LinkedHashMap<>();
        if (params != null) {
            for (String p : params) {
                int eq = p.indexOf('=');
                if (eq <= 0) {
                    throw new IllegalArgumentException("--param '" + p + "' must be name=value");
                }
                String name = p.substring(0, eq).trim();
                if (!PARAMS.contains(name)) {
                    throw new IllegalArgumentException("unknown parameter '" + name + "' for visual-flops; known: " + PARAMS.stream().sorted().toList());
                }
                values.put(name, p.substring(eq + 1).trim());
            }
        }
        VisualFlops.Dims dims = VisualFlops.Dims.of(model);
        int layers = dims.layers();
        VisualPlan read = plan == null ? null : VisualPlan.read(plan);
        if (read != null && (read.layers() != layers || read.heads() != dims.heads())) {
            throw new IllegalArgumentException("plan " + plan + " is for " + read.layers() + " layers x " + read.heads() + " heads, the config has "
                    + layers + " x " + dims.heads());
        }
        int window = values.containsKey("window") ? parseInt("window", values.get("window"))
                : read != null ? read.window() : 5;
        int drop = values.containsKey("drop_layer") ? parseInt("drop_layer", values.get("drop_layer"))
                : read != null ? read.dropLayer() : layers / 2;
        double ffn = values.containsKey("ffn_visual_fraction") ? parseDouble("ffn_visual_fraction", values.get("ffn_visual_fraction"))
                : read != null ? read.ffnVisualFraction() : 1.0;
        double[] h;
        double[] kv;
        if (values.containsKey("heads_kept") || read == null) {
            double kept = values.containsKey("heads_kept") ? parseDouble("heads_kept", values.get("heads_kept")) : dims.heads();
            if (!(kept >= 0 && kept <= dims.heads())) {
                throw new IllegalArgumentException("heads_kept must be in [0, " + dims.heads() + "], got " + kept);
            }
            h = new double[layers];
            kv = new double[layers];
            java.util.Arrays.fill(h, kept);
            java.util.Arrays.fill(kv, kept * dims.kvHeads() / dims.heads());
        } else {
            double[][] c = VisualFlops.counts(read.keepHeads(), dims.heads(), dims.kvHeads());
            h = c[0];
            kv = c[1];
        }
        io.whittle.compute.VisualLayout.radiusOf(window);
        VisualFlops.Result r = VisualFlops.compute(dims, window, drop, h, kv, ffn);
        ObjectNode out = Json.object();
        out.put("config", file.toAbsolutePath().toString());
        ObjectNode m = out.putObject("model");
        m.put("layers", layers);
        m.put("hidden", dims.hidden());
        m.put("heads", dims.heads());
        m.put("kv_heads", dims.kvHeads());
        m.put("intermediate", dims.intermediate());
        m.put("visual_tokens", dims.tokens());
        ObjectNode p = out.putObject("params");
        p.put("window", window);
        p.put("drop_layer", drop);
        p.put("ffn_visual_fraction", ffn);
        p.put("kept_heads_source", read != null && !values.containsKey("heads_kept") ? "plan " + plan : "uniform");
        p.put("average_kept_heads_before_drop", drop == 0 ? 0 : java.util.Arrays.stream(h, 0, drop).average().orElse(0));
        out.setAll(r.toJson());
        out.put("dense_tflops", String.format("%.2f", r.dense() / 1e12));
        out.put("pruned_tflops", String.format("%.2f", r.pruned() / 1e12));
        spec.commandLine().getOut().println(Json.write(out));
        return 0;
    }

    private static int parseInt(String name, String v) {
        try {
            return Integer.parseInt(v);
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException(name + " must be an integer, got '" + v + "'");
        }
    }

    private static double parseDouble(String name, String v) {
        try {
            return Double.parseDouble(v);
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException(name + " must be a number, got '" + v + "'");
        }
    }
}
