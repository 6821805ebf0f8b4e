package io.whittle.cli;

import io.whittle.forward.CalibrationData;
import java.nio.file.Path;
import picocli.CommandLine.Option;

/** Options shared by the commands that read calibration or evaluation tokens. */
final class CalibrationOptions {

    @Option(names = "--samples", defaultValue = "128", description = "Windows drawn from a .txt/.jsonl source (default ${DEFAULT-VALUE}).")
    int samples;
    @Option(names = "--seq-len", defaultValue = "2048", description = "Tokens per window for .txt/.jsonl (default ${DEFAULT-VALUE}).")
    int seqLen;
    @Option(names = "--seed", defaultValue = "1234", description = "Seed of the window draw (default ${DEFAULT-VALUE}).")
    long seed;

    CalibrationData.TextSampling sampling() {
        return new CalibrationData.TextSampling(samples, seqLen, seed);
    }

    static CalibrationData.Loaded load(Path file, int vocab, Path modelDir, CalibrationOptions options) {
        return CalibrationData.load(file, vocab, modelDir, options.sampling());
    }
}
