package io.whittle.jobs;

import java.time.Instant;

/**
 * One row of the job table: what was asked (method, paths, validated parameters, backend, priority), where it
 * stands (state, attempt, lease, progress) and how it ended (error or result). Immutable snapshot.
 *
 * @param seq            insertion order (the list order and the cursor)
 * @param paramsJson     the validated parameters with defaults filled in, as JSON
 * @param samplingJson   text-calibration sampling ({@code samples}, {@code seqLen}, {@code seed}) as JSON, or null
 * @param device         the device the (last) attempt ran on, or null before one started
 * @param leaseOwner     the worker slot holding the job while it runs, else null
 * @param executor       {@code local} (worker slots of a service process) or {@code kubernetes} (a Kubernetes Job)
 * @param resources      the placement the request asked for (Kubernetes executor), or null
 * @param kubernetes     the Kubernetes Job running it and what was last seen of its pod, or null when none
 */
public record Job(String id, long seq, String method, JobState state, int priority, String model, String calibration,
                  String eval, String output, String paramsJson, String samplingJson, String backend, String device,
                  String idempotencyKey, String requestHash, Instant createdAt, Instant startedAt, Instant finishedAt,
                  int attempt, int maxAttempts, String leaseOwner, Instant leaseUntil, boolean cancelRequested,
                  Progress progress, JobError error, JobOutput result, String executor, JobResources resources,
                  KubernetesStatus kubernetes) {

    /**
     * The Kubernetes Job of a job (Kubernetes executor) and what the reconciler last saw of its newest pod.
     *
     * @param job      the batch/v1 Job's name
     * @param pod      the newest pod's name, or null before one exists
     * @param podPhase its phase ({@code Pending}, {@code Running}, {@code Succeeded}, {@code Failed}), or null
     * @param detail   why it waits or how it ended, in words (e.g. {@code Unschedulable: 0/4 nodes are available...},
     *                 {@code suspended: waiting for Kueue admission}), or null
     */
    public record KubernetesStatus(String job, String pod, String podPhase, String detail) {
    }

    /** Where a running job is: stage name, layer (null when none), layer count and a 0..1 fraction. */
    public record Progress(String stage, Integer layer, Integer layers, double fraction) {
        public static final Progress NONE = new Progress(null, null, null, 0.0);
    }

    /** Why a job failed (or was cancelled): a stable code and a human message. */
    public record JobError(String code, String message) {
    }

    /** Where a succeeded job's output directory and its report.json are. */
    public record JobOutput(String output, String report) {
    }
}
