package io.whittle.cli;

import io.whittle.methods.JobRequest;
import io.whittle.methods.JobRunner;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

@Command(name = "run", description = "Run a compression method on a model; writes the output directory with report.json and prints the report.")
final class RunCommand implements Callable<Integer> {

    @Spec
    picocli.CommandLine.Model.CommandSpec spec;

    @Option(names = "--method", required = true, description = "Method name (see 'whittle methods').")
    String method;
    @Option(names = "--model", required = true, description = "Hugging Face model directory (read-only).")
    Path model;
    @Option(names = "--calibration", description = "Calibration tokens: .json, .safetensors, .txt or .jsonl.")
    Path calibration;
    @Option(names = "--eval", description = "Token file for perplexity before and after.")
    Path eval;
    @Option(names = "--out", required = true, description = "Output directory (must not exist or be empty).")
    Path out;
    @Option(names = "--param", description = "Method parameter k=v (repeatable).")
    List<String> params;
    @Option(names = "--backend", defaultValue = "auto", description = "cpu | cuda | auto (default ${DEFAULT-VALUE}).")
    String backend;
    @Mixin
    CalibrationOptions calibrationOptions;

    @Override
    public Integer call() throws Exception {
        Map<String, String> values = new LinkedHashMap<>();
        if (params != null) {
            for (String p : params) {
                int eq = p.indexOf('=');
                if (eq <= 0) {
                    throw new IllegalArgumentException("--param '" + p + "' must be name=value");
                }
                values.put(p.substring(0, eq).trim(), p.substring(eq + 1).trim());
            }
        }
        JobRequest request = new JobRequest(method, model, calibration, eval, values, out, backend, calibrationOptions.sampling());
        JobRunner.Prepared prepared = JobRunner.prepare(request);
        JobRunner.JobResult result = prepared.run((stage, layer, layers, fraction) -> {
        }, () -> false);
        spec.commandLine().getOut().println(Json.write(result.report()));
        return 0;
    }
}
