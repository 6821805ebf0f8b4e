package io.whittle.api;

import com.fasterxml.jackson.annotation.JsonInclude;
import io.whittle.jobs.Job;
import java.time.Instant;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;

/**
 * A job as {@code GET /api/v1/jobs/{id}} shows it. {@code error} appears when the job failed or was cancelled,
 * {@code result} when it succeeded. {@code backend} is what was asked for; {@code device} what the worker used.
 * {@code executor} says what runs the job ({@code local} or {@code kubernetes}); with the Kubernetes executor,
 * {@code kubernetes} names the job's Kubernetes Job and shows its newest pod and that pod's phase, and
 * {@code resources} the GPUs the request asked for.
 */
public record JobView(String id, String method, String state, Instant createdAt, Instant startedAt, Instant finishedAt,
                      int attempt, int maxAttempts, ProgressView progress,
                      @JsonInclude(JsonInclude.Include.NON_NULL) ErrorView error,
                      @JsonInclude(JsonInclude.Include.NON_NULL) ResultView result,
                      JsonNode params, String backend, String device, int priority, String model, String calibration,
                      String eval, String output, boolean cancelRequested, String executor,
                      @JsonInclude(JsonInclude.Include.NON_NULL) ResourcesView resources,
                      @JsonInclude(JsonInclude.Include.NON_NULL) KubernetesView kubernetes) {

    private static final JsonMapper JSON = JsonMapper.builder().build();

    /** Stage, layer (null when none), layer count and a 0..1 fraction. */
    public record ProgressView(String stage, Integer layer, Integer layers, double fraction) {
    }

    public record ErrorView(String code, String message) {
    }

    /** The published output directory and its report.json (paths on the server). */
    public record ResultView(String output, String report) {
    }

    /** The GPUs the request asked for (unset fields: the executor's defaults). */
    public record ResourcesView(@JsonInclude(JsonInclude.Include.NON_NULL) Integer gpus,
                                @JsonInclude(JsonInclude.Include.NON_NULL) String gpuResource) {
    }

    /**
     * The Kubernetes Job running the job, its newest pod, the pod's phase ({@code Pending}, {@code Running},
     * {@code Succeeded}, {@code Failed}; null before a pod exists) and why it waits or how it ended.
     */
    public record KubernetesView(String job, String pod, String podPhase, String detail) {
    }

    public static JobView of(Job j) {
        Job.Progress p = j.progress();
        return new JobView(j.id(), j.method(), j.state().name(), j.createdAt(), j.startedAt(), j.finishedAt(), j.attempt(),
                j.maxAttempts(), new ProgressView(p.stage(), p.layer(), p.layers(), p.fraction()),
                j.error() == null ? null : new ErrorView(j.error().code(), j.error().message()),
                j.result() == null ? null : new ResultView(j.result().output(), j.result().report()),
                JSON.readTree(j.paramsJson()), j.backend(), j.device(), j.priority(), j.model(), j.calibration(), j.eval(),
                j.output(), j.cancelRequested(), j.executor(),
                j.resources() == null ? null : new ResourcesView(j.resources().gpus(), j.resources().gpuResource()),
                j.kubernetes() == null ? null : new KubernetesView(j.kubernetes().job(), j.kubernetes().pod(),
                        j.kubernetes().podPhase(), j.kubernetes().detail()));
    }
}
