package io.whittle.jobs;

/** The stable {@code error.code} values of failed and cancelled jobs (a contract for clients and dashboards). */
public final class JobErrorCodes {

    /** The request no longer validates when a worker picks it up (e.g. the model directory was removed). */
    public static final String INVALID_JOB = "INVALID_JOB";
    /** The method threw while running. */
    public static final String METHOD_FAILED = "METHOD_FAILED";
    /** The run needed more memory than it could get. */
    public static final String OUT_OF_MEMORY = "OUT_OF_MEMORY";
    /** The requested backend is not usable on the worker that took the job. */
    public static final String BACKEND_UNAVAILABLE = "BACKEND_UNAVAILABLE";
    /** The output directory is already taken (e.g. published by an earlier attempt that died before recording it). */
    public static final String OUTPUT_EXISTS = "OUTPUT_EXISTS";
    /** Every attempt's worker stopped heartbeating (killed pod, lost node) and {@code max-attempts} is used up. */
    public static final String LEASE_EXPIRED = "LEASE_EXPIRED";
    /** A user cancelled the job. */
    public static final String CANCELLED = "CANCELLED";

    private JobErrorCodes() {
    }
}
