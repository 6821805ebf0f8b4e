package io.whittle.cli;

import io.whittle.model.Checkpoint;
import io.whittle.model.ModelSpec;
import io.whittle.model.ModelSpecs;
import io.whittle.model.safetensors.TensorEntry;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;
import tools.jackson.databind.node.ArrayNode;
import tools.jackson.databind.node.ObjectNode;

@Command(name = "inspect", description = "Print a checkpoint's model type, layer count, parameter count and tensors as JSON.")
final class InspectCommand implements Callable<Integer> {

    @Spec
    picocli.CommandLine.Model.CommandSpec spec;

    @Parameters(index = "0", description = "A model directory or a .safetensors file.")
    Path path;

    @Override
    public Integer call() {
        try (Checkpoint checkpoint = Checkpoint.open(path)) {
            ObjectNode node = Json.object();
            node.put("path", path.toAbsolutePath().toString());
            Path dir = Files.isDirectory(path) ? path : path.toAbsolutePath().getParent();
            ModelSpec model = dir != null && Files.exists(dir.resolve("config.json")) ? ModelSpecs.load(dir) : null;
            if (model != null) {
                node.put("model_type", model.modelType());
                node.put("layers", model.numLayers());
            } else {
                node.putNull("model_type");
                node.putNull("layers");
            }
            long params = 0;
            long bytes = 0;
            ArrayNode tensors = Json.MAPPER.createArrayNode();
            for (String name : checkpoint.tensorNames()) {
                TensorEntry e = checkpoint.entry(name);
                params += e.numel();
                bytes += e.byteLength();
                ObjectNode t = tensors.addObject();
                t.put("name", name);
                t.put("dtype", e.dtype().safetensorsName());
                ArrayNode shape = t.putArray("shape");
                for (long d : e.shape().dims()) {
                    shape.add(d);
                }
            }
            node.put("parameters", params);
            node.put("bytes", bytes);
            if (model != null) {
                ArrayNode problems = node.putArray("problems");
                model.validate(checkpoint).forEach(problems::add);
            }
            node.set("tensors", tensors);
            spec.commandLine().getOut().println(Json.write(node));
        }
        return 0;
    }
}
