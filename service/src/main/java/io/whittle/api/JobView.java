package io.whittle.api;

import com.fasterxml.jackson.annotation.JsonInclude;
import io.whittle.jobs.Job;
import java.time.Instant;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;

/**
 * A job as {@code GET /api/v1/jobs/{id}} shows it. {@code error} appears when the job failed or was cancelled,
 * {@code result} when it succeeded. {@code backend} is what was asked for; {@code device} what the worker used.
 */
public record JobView(String id, String method, String state, Instant createdAt, Instant startedAt, Instant finishedAt,
                      int attempt, int maxAttempts, ProgressView progress,
                      @JsonInclude(JsonInclude.Include.NON_NULL) ErrorView error,
                      @JsonInclude(JsonInclude.Include.NON_NULL) ResultView result,
                      JsonNode params, String backend, String device, int priority, String model, String calibration,
                      String eval, String output, boolean cancelRequested) {

    private static final JsonMapper JSON = JsonMapper.builder().build();

    /** Stage, layer (null when none), layer count and a 0..1 fraction. */
    public record ProgressView(String stage, Integer layer, Integer layers, double fraction) {
    }

    public record ErrorView(String code, String message) {
    }

    /** The published output directory and its report.json (paths on the server). */
    public record ResultView(String output, String report) {
    }

    public static JobView of(Job j) {
        Job.Progress p = j.progress();
        return new JobView(j.id(), j.method(), j.state().name(), j.createdAt(), j.startedAt(), j.finishedAt(), j.attempt(),
                j.maxAttempts(), new ProgressView(p.stage(), p.layer(), p.layers(), p.fraction()),
                j.error() == null ? null : new ErrorView(j.error().code(), j.error().message()),
                j.result() == null ? null : new ResultView(j.result().output(), j.result().report()),
                JSON.readTree(j.paramsJson()), j.backend(), j.device(), j.priority(), j.model(), j.calibration(), j.eval(),
                j.output(), j.cancelRequested());
    }
}
