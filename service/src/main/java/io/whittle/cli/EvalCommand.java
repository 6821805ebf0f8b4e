package io.whittle.cli;

import io.whittle.compute.Backend;
import io.whittle.compute.Backends;
import io.whittle.forward.CalibrationData;
import io.whittle.forward.Evaluation;
import io.whittle.forward.LayerwisePipeline;
import io.whittle.forward.PipelineResult;
import io.whittle.model.ModelSpec;
import io.whittle.model.ModelSpecs;
import io.whittle.tensor.HostAllocator;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;
import tools.jackson.databind.node.ArrayNode;
import tools.jackson.databind.node.ObjectNode;

@Command(name = "eval", description = "Mean next-token NLL and perplexity of a model on token sequences (JSON on stdout).")
final class EvalCommand implements Callable<Integer> {

    @Spec
    picocli.CommandLine.Model.CommandSpec spec;

    @Option(names = "--model", required = true, description = "Hugging Face model directory.")
    Path model;
    @Option(names = "--calibration", required = true, description = "Token file: .json, .safetensors, .txt or .jsonl.")
    Path calibration;
    @Option(names = "--backend", defaultValue = "auto", description = "cpu | cuda | auto (default ${DEFAULT-VALUE}).")
    String backend;
    @Option(names = "--windows-out", description = "For .txt/.jsonl input: save the drawn windows (token ids) here.")
    Path windowsOut;
    @Mixin
    CalibrationOptions calibrationOptions;

    @Override
    public Integer call() throws IOException {
        ModelSpec model = ModelSpecs.load(this.model);
        CalibrationData.Loaded data = CalibrationOptions.load(calibration, model.vocabSize(), this.model, calibrationOptions);
        if (windowsOut != null && data.windowsRecord() != null) {
            Files.writeString(windowsOut, Json.write(data.windowsRecord()));
        }
        PipelineResult result;
        try (HostAllocator alloc = HostAllocator.root().newChild("eval", Long.MAX_VALUE);
             Backend b = Backends.create(backend, alloc)) {
            result = Evaluation.evaluate(this.model, data.batch(), b, alloc, LayerwisePipeline.Listener.NONE);
        }
        ObjectNode node = Json.object();
        node.put("sequences", data.batch().sequenceCount());
        node.put("tokens", result.predictedTokens());
        node.put("mean_nll", result.meanNll());
        node.put("perplexity", result.perplexity());
        ArrayNode per = node.putArray("per_sequence_mean_nll");
        for (double v : result.perSequenceMeanNll()) {
            per.add(v);
        }
        spec.commandLine().getOut().println(Json.write(node));
        return 0;
    }
}
