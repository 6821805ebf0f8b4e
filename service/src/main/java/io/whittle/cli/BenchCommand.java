package io.whittle.cli;

import io.whittle.compute.Backend;
import io.whittle.compute.Backends;
import io.whittle.forward.ForwardBenchmark;
import io.whittle.model.ModelSpec;
import io.whittle.model.ModelSpecs;
import io.whittle.tensor.HostAllocator;
import java.io.IOException;
import java.io.InputStream;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;
import tools.jackson.databind.json.JsonMapper;
import tools.jackson.databind.node.ObjectNode;

@Command(name = "bench", description = "Forward throughput of one layer of a real model shape (random weights) and the "
        + "BLAS matrix rate measured in the same run (JSON).")
final class BenchCommand implements Callable<Integer> {

    static final List<String> SHAPES = List.of("qwen1.5-moe-a2.7b", "olmoe-1b-7b-0924", "deepseek-moe-16b-base", "qwen3-30b-a3b",
            "mixtral-8x7b", "qwen2-57b-a14b", "llama-2-7b-hf", "llava-1.5-7b-hf");

    @Spec
    picocli.CommandLine.Model.CommandSpec spec;

    @Option(names = "--shape", defaultValue = "qwen1.5-moe-a2.7b", description = "Model shape: ${COMPLETION-CANDIDATES}",
            completionCandidates = ShapeNames.class)
    String shape;
    @Option(names = "--layer", defaultValue = "1", description = "Which layer's kind to run (default ${DEFAULT-VALUE}).")
    int layer;
    @Option(names = "--sequences", defaultValue = "4")
    int sequences;
    @Option(names = "--seq-len", defaultValue = "256")
    int seqLen;
    @Option(names = "--repeats", defaultValue = "3")
    int repeats;
    @Option(names = "--backend", defaultValue = "auto")
    String backend;

    static final class ShapeNames implements Iterable<String> {
        @Override
        public java.util.Iterator<String> iterator() {
            return SHAPES.iterator();
        }
    }

    @Override
    public Integer call() throws IOException {
        if (!SHAPES.contains(shape)) {
            throw new IllegalArgumentException("unknown shape '" + shape + "'; known: " + SHAPES);
        }
        ModelSpec model;
        try (InputStream in = BenchCommand.class.getResourceAsStream("/shapes/" + shape + ".json")) {
            model = ModelSpecs.fromConfig(JsonMapper.builder().build().readTree(in), shape);
        }
        if (layer < 0 || layer >= model.numLayers()) {
            throw new IllegalArgumentException("--layer " + layer + " outside 0.." + (model.numLayers() - 1));
        }
        ForwardBenchmark.Result r;
        try (HostAllocator alloc = HostAllocator.root().newChild("bench", Long.MAX_VALUE);
             Backend b = Backends.create(backend, alloc)) {
            r = ForwardBenchmark.run(shape, model, layer, b, sequences, seqLen, repeats, alloc);
            ObjectNode node = Json.object();
            node.put("shape", r.shape());
            node.put("layer", r.layer());
            node.put("moe_layer", r.moeLayer());
            node.put("sequences", r.sequences());
            node.put("seq_len", r.seqLen());
            node.put("tokens", r.sequences() * r.seqLen());
            node.put("repeats", r.repeats());
            node.put("median_seconds", r.medianSeconds());
            node.put("tokens_per_second", r.tokensPerSecond());
            node.put("flops_per_token", r.flopsPerToken());
            node.put("model_gflops", r.modelGflops());
            node.put("blas_gemm_gflops", r.gemmGflops());
            node.put("blas_gemm_size", r.gemmSize());
            node.put("efficiency_vs_blas", r.efficiency());
            node.put("peak_host_bytes", r.peakHostBytes());
            node.put("backend", b.name());
            node.put("device", b.device().name());
            node.put("blas", b.device().blas());
            spec.commandLine().getOut().println(Json.write(node));
        }
        return 0;
    }
}
