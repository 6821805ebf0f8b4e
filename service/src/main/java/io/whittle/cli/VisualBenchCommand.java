package io.whittle.cli;

import io.whittle.methods.JobRequest;
import io.whittle.methods.JobRunner;
import io.whittle.model.ModelSpec.Family;
import io.whittle.model.SyntheticModels;
import io.whittle.model.safetensors.SafetensorsWriter;
import io.whittle.model.safetensors.TensorSource;
import io.whittle.tensor.DType;
import io.whittle.tensor.FloatTensor;
import io.whittle.tensor.HostAllocator;
import io.whittle.tensor.Shape;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.Callable;
import java.util.stream.Stream;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.node.ArrayNode;
import tools.jackson.databind.node.ObjectNode;

@Command(name = "visual-bench", description = "Dense versus visual-pruned prefill on a synthetic LLaVA-shaped model with 576 "
        + "visual tokens (random weights and image embeddings): runs the visual-prune job and prints its timing, FLOPs and "
        + "fidelity (JSON).")
final class VisualBenchCommand implements Callable<Integer> {

    @Spec
    picocli.CommandLine.Model.CommandSpec spec;

    @Option(names = "--layers", defaultValue = "8")
    int layers;
    @Option(names = "--hidden", defaultValue = "512")
    int hidden;
    @Option(names = "--heads", defaultValue = "8")
    int heads;
    @Option(names = "--intermediate", defaultValue = "1376")
    int intermediate;
    @Option(names = "--vocab", defaultValue = "1024")
    int vocab;
    @Option(names = "--prefix", defaultValue = "35", description = "Tokens before the image (LLaVA-1.5: 35).")
    int prefix;
    @Option(names = "--text", defaultValue = "40", description = "Prompt and answer tokens after the image.")
    int text;
    @Option(names = "--samples", defaultValue = "3")
    int samples;
    @Option(names = "--window", defaultValue = "5")
    int window;
    @Option(names = "--heads-kept", description = "Average kept heads per layer (default: half the heads).")
    Double headsKept;
    @Option(names = "--drop-layer", description = "Default: layers / 2.")
    Integer dropLayer;
    @Option(names = "--backend", defaultValue = "auto")
    String backend;
    @Option(names = "--seed", defaultValue = "1")
    long seed;
    @Option(names = "--blas-threads", description = "OpenBLAS threads for this run (default: OpenBLAS's own choice); 1 gives "
            + "stable timings on a shared, oversubscribed machine.")
    Integer blasThreads;

    @Override
    public Integer call() throws Exception {
        if (prefix < 1 || text < 2 || samples < 1) {
            throw new IllegalArgumentException("--prefix must be >= 1, --text >= 2 and --samples >= 1");
        }
        if (blasThreads != null) {
            io.whittle.compute.cpu.CpuBackend.setBlasThreads(blasThreads);
        }
        Path dir = Files.createTempDirectory("whittle-visual-bench");
        try {
            Path model = dir.resolve("model");
            SyntheticModels.write(new SyntheticModels.Request(Family.LLAVA, layers, hidden, intermediate, 0, 0, 0, 0, heads, heads,
                    vocab, seed, DType.BF16, 1), model);
            int imageToken = Math.min(32000, vocab - 1);
            Random random = new Random(seed);
            float[] embeds = new float[samples * 576 * hidden];
            for (int i = 0; i < embeds.length; i++) {
                embeds[i] = (float) random.nextGaussian();
            }
            try (FloatTensor e = HostAllocator.root().allocate(Shape.of(samples, 576, hidden), "bench embeds")) {
                e.copyFrom(embeds, 0, 0, embeds.length);
                SafetensorsWriter.write(dir.resolve("embeds.safetensors"), List.of(TensorSource.ofFloat("image_embeds", DType.F32, e)),
                        Map.of());
            }
            ObjectNode manifest = Json.object();
            ArrayNode arr = manifest.putArray("samples");
            for (int s = 0; s < samples; s++) {
                ObjectNode o = arr.addObject();
                o.put("features", "embeds.safetensors#" + s);
                ArrayNode ids = o.putArray("input_ids");
                for (int i = 0; i < prefix + 1 + text; i++) {
                    ids.add(i == prefix ? imageToken : 1 + random.nextInt(imageToken - 1));
                }
            }
            Path manifestFile = dir.resolve("manifest.json");
            Files.writeString(manifestFile, Json.write(manifest));
            Map<String, Object> params = new java.util.LinkedHashMap<>();
            params.put("window", window);
            params.put("heads_kept", headsKept != null ? headsKept : heads / 2.0);
            params.put("drop_layer", dropLayer != null ? dropLayer : layers / 2);
            params.put("timing_samples", samples);
            params.put("max_samples", samples);
            JobRunner.JobResult r = JobRunner.prepare(new JobRequest("visual-prune", model, manifestFile, null, params,
                    dir.resolve("out"), backend, null)).run(null, null);
            JsonNode res = r.report().get("result");
            ObjectNode out = Json.object();
            ObjectNode shape = out.putObject("model");
            shape.put("layers", layers);
            shape.put("hidden", hidden);
            shape.put("heads", heads);
            shape.put("intermediate", intermediate);
            shape.put("sequence", prefix + 576 + text);
            shape.put("visual_tokens", 576);
            out.set("params", r.report().get("params"));
            out.set("prefill", res.get("prefill"));
            ObjectNode flops = out.putObject("visual_flops");
            flops.set("dense", res.get("visual_flops").get("dense"));
            flops.set("pruned", res.get("visual_flops").get("pruned"));
            flops.set("pruned_fraction", res.get("visual_flops").get("pruned_fraction"));
            out.set("average_kept_heads", res.get("kept_heads").get("average"));
            out.set("fidelity", res.get("fidelity"));
            out.set("timings", r.report().get("timings"));
            out.put("backend", r.report().get("backend").get("name").stringValue());
            out.set("blas", r.report().get("backend").get("device").get("blas"));
            out.put("blas_threads", blasThreads == null ? "default" : blasThreads.toString());
            spec.commandLine().getOut().println(Json.write(out));
        } finally {
            try (Stream<Path> walk = Files.walk(dir)) {
                walk.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
            }
        }
        return 0;
    }
}
