package io.whittle.jobs;

/**
 * A validated job to insert: every path already resolved under the storage roots, parameters validated against
 * the method's descriptor.
 */
public record NewJob(String id, String method, int priority, String model, String calibration, String eval,
                     String output, String paramsJson, String samplingJson, String backend, String idempotencyKey,
                     String requestHash, int maxAttempts) {
}
