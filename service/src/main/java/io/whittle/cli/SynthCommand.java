package io.whittle.cli;

import io.whittle.model.ModelSpec;
import io.whittle.model.ModelSpec.Family;
import io.whittle.model.SyntheticModels;
import io.whittle.tensor.DType;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

@Command(name = "synth", description = "Write a random model in the real Hugging Face layout of a family.")
final class SynthCommand implements Callable<Integer> {

    @Spec
    picocli.CommandLine.Model.CommandSpec spec;

    @Option(names = "--family", required = true, description = "llama, mixtral, qwen2_moe, qwen3_moe, olmoe, deepseek, llava")
    String family;
    @Option(names = "--layers", required = true)
    int layers;
    @Option(names = "--hidden", required = true)
    int hidden;
    @Option(names = "--intermediate", required = true, description = "Dense MLP width (and the expert width where the family has no separate one).")
    int intermediate;
    @Option(names = "--experts", defaultValue = "0")
    int experts;
    @Option(names = "--top-k", defaultValue = "0")
    int topK;
    @Option(names = "--moe-intermediate", defaultValue = "0")
    int moeIntermediate;
    @Option(names = "--shared-intermediate", defaultValue = "0")
    int sharedIntermediate;
    @Option(names = "--heads", required = true)
    int heads;
    @Option(names = "--kv-heads", required = true)
    int kvHeads;
    @Option(names = "--vocab", required = true)
    int vocab;
    @Option(names = "--seed", required = true)
    long seed;
    @Option(names = "--dtype", defaultValue = "bf16", description = "bf16 | f16 | f32")
    String dtype;
    @Option(names = "--shards", defaultValue = "1")
    int shards;
    @Option(names = "--out", required = true)
    Path out;

    @Override
    public Integer call() {
        Family f = Family.fromModelType(family);
        var request = new SyntheticModels.Request(f, layers, hidden, intermediate, experts, topK, moeIntermediate,
                sharedIntermediate, heads, kvHeads, vocab, seed, DType.parseFloatType(dtype), shards);
        ModelSpec written = SyntheticModels.write(request, out);
        var node = Json.object();
        node.put("out", out.toAbsolutePath().toString());
        node.put("model_type", written.modelType());
        node.put("layers", written.numLayers());
        node.put("parameters", written.parameterCount());
        spec.commandLine().getOut().println(Json.write(node));
        return 0;
    }
}
