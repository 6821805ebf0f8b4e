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
    /**
     * Kubernetes executor: Kubernetes gave up on the job's Job (backoff limit reached, {@code activeDeadlineSeconds}
     * passed, pod failure policy); the message has the Job's reason and the last pod's termination.
     */
    public static final String WORKER_FAILED = "WORKER_FAILED";
    /** Kubernetes executor: the job's pod stayed Unschedulable longer than the configured time. */
    public static final String WORKER_UNSCHEDULABLE = "WORKER_UNSCHEDULABLE";
    /**
     * Kubernetes executor: the job's pod could not start (ImagePullBackOff, ErrImagePull, CreateContainerConfigError,
     * ...) for longer than the configured time.
     */
    public static final String WORKER_START_FAILED = "WORKER_START_FAILED";
    /** Kubernetes executor: the job's Job completed but its worker recorded no result. */
    public static final String WORKER_NO_RESULT = "WORKER_NO_RESULT";
    /** Kubernetes executor: the job's Job disappeared (deleted outside Whittle) before the job ended. */
    public static final String WORKER_LOST = "WORKER_LOST";
    /** Kubernetes executor: the Kubernetes API refused to create the job's Job (e.g. an invalid or denied spec). */
    public static final String WORKER_REJECTED = "WORKER_REJECTED";
    /** A user cancelled the job. */
    public static final String CANCELLED = "CANCELLED";

    private JobErrorCodes() {
    }
}
