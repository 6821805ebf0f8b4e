package io.whittle.metrics;

import java.time.Duration;

/**
 * What the job service and its workers measure, behind an interface whose methods all default to doing nothing
 * (HikariCP's {@code IMetricsTracker} pattern): code records unconditionally, and {@link #NONE} serves where no
 * registry is configured. {@link MicrometerJobMetrics} publishes the meters the dashboards read.
 */
public interface JobMetrics {

    /** Records nothing. */
    JobMetrics NONE = new JobMetrics() {
    };

    /** A job was accepted. */
    default void jobSubmitted(String method) {
    }

    /** A job reached a final state; {@code outcome} is {@code succeeded}, {@code failed} or {@code cancelled}. */
    default void jobCompleted(String method, String outcome) {
    }

    /** Wall time of a successful run on a backend ({@code cpu}, {@code cuda}). */
    default void jobDuration(String method, String backend, Duration duration) {
    }

    /** Time one stage of a successful run took (from the report's timings). */
    default void stageDuration(String method, String stage, Duration duration) {
    }

    /** Peak device memory of a run (host memory on the CPU backend). */
    default void jobDevicePeakMemory(String method, long bytes) {
    }

    /** Bytes of model weights a run read. */
    default void bytesProcessed(String method, long bytes) {
    }

    /**
     * One benchmark measurement: {@code throughput} of operation {@code op} on model shape {@code shape} on
     * {@code device}, in the operation's unit per second (FLOP/s for matrix products, bytes/s for copies, tokens/s
     * for a forward pass), and {@code efficiency}, the throughput as a fraction of the ceiling of that device
     * measured in the same run. A later measurement of the same op, shape and device replaces the earlier one.
     * Workers report here each entry of {@code result.benchmark_results} in a successful job's report (a method's
     * report: {@code {"op", "shape", "device", "throughput", "efficiency"}}; device defaults to the job's).
     */
    default void benchmarkResult(String op, String shape, String device, double throughput, double efficiency) {
    }
}
