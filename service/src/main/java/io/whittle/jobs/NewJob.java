package io.whittle.jobs;

/**
 * A validated job to insert: every path already resolved under the storage roots, parameters validated against
 * the method's descriptor.
 *
 * @param executor  the executor that is to run it ({@code local} or {@code kubernetes})
 * @param resources the placement the request asked for, or null
 */
public record NewJob(String id, String method, int priority, String model, String calibration, String eval,
                     String output, String paramsJson, String samplingJson, String backend, String idempotencyKey,
                     String requestHash, int maxAttempts, String executor, JobResources resources) {

    /** A job for the local workers, with no placement request. */
    public NewJob(String id, String method, int priority, String model, String calibration, String eval, String output,
                  String paramsJson, String samplingJson, String backend, String idempotencyKey, String requestHash,
                  int maxAttempts) {
        this(id, method, priority, model, calibration, eval, output, paramsJson, samplingJson, backend, idempotencyKey,
                requestHash, maxAttempts, ExecutorNames.LOCAL, null);
    }
}
