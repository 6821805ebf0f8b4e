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
 */
public record Job(String id, long seq, String method, JobState state, int priority, String model, String calibration,
                  String eval, String output, String paramsJson, String samplingJson, String backend, String device,
                  String idempotencyKey, String requestHash, Instant createdAt, Instant startedAt, Instant finishedAt,
                  int attempt, int maxAttempts, String leaseOwner, Instant leaseUntil, boolean cancelRequested,
                  Progress progress, JobError error, JobOutput result) {

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
