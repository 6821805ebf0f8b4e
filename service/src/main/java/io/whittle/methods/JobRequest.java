package io.whittle.methods;

import io.whittle.forward.CalibrationData.TextSampling;
import java.nio.file.Path;
import java.util.Map;

/**
 * One job as a user states it (CLI {@code whittle run} or {@code POST /api/v1/jobs}): method, model directory,
 * calibration and evaluation token files (optional where the method allows), parameters, output directory,
 * backend ({@code auto|cpu|cuda}) and how to sample text calibration files.
 */
public record JobRequest(String method, Path model, Path calibration, Path eval, Map<String, ?> params, Path output,
                         String backend, TextSampling sampling) {

    public JobRequest {
        params = params == null ? Map.of() : params;
        backend = backend == null ? "auto" : backend;
        sampling = sampling == null ? TextSampling.PAPER_DEFAULT : sampling;
    }
}
