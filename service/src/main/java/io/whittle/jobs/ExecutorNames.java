package io.whittle.jobs;

/** The names of the executors that run jobs (the job's {@code executor} and {@code whittle.executor}). */
public final class ExecutorNames {

    /** Worker slots inside service processes (roles {@code worker} and {@code all}). */
    public static final String LOCAL = "local";
    /** One Kubernetes Job per compression job, created by the API ({@code io.whittle.jobs.kubernetes}). */
    public static final String KUBERNETES = "kubernetes";

    private ExecutorNames() {
    }
}
