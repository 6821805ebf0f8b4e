package io.whittle.cli;

import io.whittle.compute.Backend;
import io.whittle.compute.Backends;
import io.whittle.forward.CalibrationData;
import io.whittle.forward.DenseSampler;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

@Command(name = "sample", description = "Draw token sequences from a model itself and write them as a token file "
        + "({\"input_ids\": [...]}); on such tokens the original model is the best predictor, so perplexity after "
        + "compression measures how far a compressed model moved from it (useful for synthetic models).")
final class SampleCommand implements Callable<Integer> {

    @Spec
    picocli.CommandLine.Model.CommandSpec spec;

    @Option(names = "--model", required = true)
    Path model;
    @Option(names = "--sequences", defaultValue = "16")
    int sequences;
    @Option(names = "--seq-len", defaultValue = "128")
    int seqLen;
    @Option(names = "--temperature", defaultValue = "1.0")
    double temperature;
    @Option(names = "--seed", defaultValue = "1234")
    long seed;
    @Option(names = "--backend", defaultValue = "auto")
    String backend;
    @Option(names = "--out", required = true, description = "Token file to write (JSON).")
    Path out;

    @Override
    public Integer call() throws Exception {
        if (Files.exists(out)) {
            throw new IllegalArgumentException("output " + out + " already exists");
        }
        List<int[]> seqs;
        try (Backend b = Backends.create(backend)) {
            seqs = DenseSampler.sample(model, b, sequences, seqLen, temperature, seed);
        }
        var root = Json.object();
        root.set("input_ids", CalibrationData.toJson(seqs));
        root.put("sampled_from", model.toAbsolutePath().toString());
        root.put("temperature", temperature);
        root.put("seed", seed);
        Files.writeString(out, Json.write(root));
        var summary = Json.object();
        summary.put("out", out.toAbsolutePath().toString());
        summary.put("sequences", seqs.size());
        summary.put("seq_len", seqLen);
        spec.commandLine().getOut().println(Json.write(summary));
        return 0;
    }
}
