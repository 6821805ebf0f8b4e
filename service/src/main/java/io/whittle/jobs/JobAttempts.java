package io.whittle.jobs;

import io.whittle.jobs.Job.JobError;
import io.whittle.jobs.Job.JobOutput;
import io.whittle.jobs.Job.Progress;
import io.whittle.jobs.JobStore.LeaseStatus;
import io.whittle.methods.JobProgress;
import io.whittle.metrics.JobMetrics;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.CancellationException;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import tools.jackson.databind.JsonNode;

/**
 * Runs one claimed attempt of a job under its lease: a heartbeat renews the lease and reads the cancel flag while the
 * {@link JobExecutor} works, progress is recorded, and the outcome is written. Fencing: every write is conditional on
 * still holding the lease; a heartbeat that finds the lease lost (or no heartbeat succeeding for a whole lease) makes
 * the run cancel at its next layer boundary and discards its result, and the lease is confirmed once more right
 * before the output is published. The worker slots of a {@link WorkerPool} and the single job of a Kubernetes Job's
 * pod ({@link SingleJobWorker}) both run their jobs through this class.
 */
public final class JobAttempts {

    private static final Logger log = LoggerFactory.getLogger(JobAttempts.class);

    /** How an attempt ended, from this worker's point of view. */
    public enum Outcome {
        /** The output is published and the success recorded. */
        SUCCEEDED,
        /** The job failed and the failure is recorded. */
        FAILED,
        /** The job stopped on a cancel request and that is recorded. */
        CANCELLED,
        /** The worker is stopping: the job went back to the queue (or was cancelled, when a cancel was requested). */
        RELEASED,
        /** The lease was lost (another worker holds the job, or it ended): nothing was recorded, the work is discarded. */
        LEASE_LOST,
        /** The outcome could not be recorded (database unreachable); the lease expires and another attempt runs. */
        NOT_RECORDED
    }

    /**
     * What an attempt came to.
     *
     * @param message one line: the error of a failed job, where a released job went, why nothing was recorded
     */
    public record Result(Outcome outcome, String message) {
    }

    private final JobStore store;
    private final JobExecutor executor;
    private final WorkerSettings settings;
    private final JobMetrics metrics;
    private final ScheduledExecutorService heartbeats;
    private final Map<String, RunningJob> active = new ConcurrentHashMap<>();

    /**
     * @param heartbeats runs the lease heartbeats (owned by the caller)
     */
    public JobAttempts(JobStore store, JobExecutor executor, WorkerSettings settings, JobMetrics metrics,
                       ScheduledExecutorService heartbeats) {
        this.store = store;
        this.executor = executor;
        this.settings = settings;
        this.metrics = metrics == null ? JobMetrics.NONE : metrics;
        this.heartbeats = heartbeats;
    }

    /** The ids of the jobs running now. */
    public List<String> activeJobIds() {
        return active.values().stream().map(r -> r.job.id()).toList();
    }

    /** Number of attempts running now. */
    public int activeCount() {
        return active.size();
    }

    /**
     * Asks every running attempt to stop at its next layer boundary and give its job back to the queue (a stopping
     * worker); each {@link #run} then returns {@link Outcome#RELEASED}.
     */
    public void releaseAll() {
        active.values().forEach(r -> r.releaseRequested = true);
    }

    /** Runs the claimed {@code job}, held by {@code owner}, to its end; never throws for a failing job. */
    public Result run(Job job, String owner) {
        RunningJob rj = new RunningJob(job, owner);
        active.put(owner, rj);
        log.info("{}: running job {} ({}, attempt {}/{})", owner, job.id(), job.method(), job.attempt(), job.maxAttempts());
        long hb = settings.heartbeat().toMillis();
        ScheduledFuture<?> beat = null;
        long start = System.nanoTime();
        try {
            try {
                beat = heartbeats.scheduleWithFixedDelay(rj::beat, hb, hb, TimeUnit.MILLISECONDS);
            } catch (RejectedExecutionException e) {
                // the heartbeat scheduler is gone (the process is stopping): without heartbeats the lease cannot be held
                rj.leaseLost = true;
            }
            JobExecutor.Execution ex = executor.execute(job, rj, rj);
            Duration took = Duration.ofNanos(System.nanoTime() - start);
            Progress done = new Progress("done", null, rj.last.layers(), 1.0);
            // the heartbeat keeps the lease while the outcome is recorded (with retries)
            boolean recorded = write(owner, "success", job, () -> store.finish(job.id(), owner, JobState.SUCCEEDED, null,
                    new JobOutput(ex.output().toString(), ex.report().toString()), ex.device(), done));
            if (beat != null) {
                beat.cancel(false);
            }
            if (recorded) {
                recordSuccess(job, ex, took);
                log.info("{}: job {} succeeded in {} s: {}", owner, job.id(), took.toMillis() / 1000.0, ex.output());
                return new Result(Outcome.SUCCEEDED, "job " + job.id() + " succeeded: " + ex.output());
            }
            // unrecorded, the output must not stay: the attempt that owns the job (now or after this lease expires)
            // publishes its own
            log.warn("{}: could not record the success of job {} (lease lost or database unreachable); withdrawing {}",
                    owner, job.id(), ex.output());
            withdraw(ex.output());
            return new Result(rj.leaseLost ? Outcome.LEASE_LOST : Outcome.NOT_RECORDED, "could not record the success of job "
                    + job.id() + " (lease lost or database unreachable); its output was withdrawn");
        } catch (CancellationException e) {
            if (rj.leaseLost) {
                log.warn("{}: lost the lease of job {}; its work is discarded", owner, job.id());
                return new Result(Outcome.LEASE_LOST, "lost the lease of job " + job.id() + "; its work is discarded");
            } else if (rj.cancelRequested) {
                String message = "cancelled by request during stage " + rj.last.stage();
                if (write(owner, "cancellation", job, () -> store.finish(job.id(), owner, JobState.CANCELLED,
                        new JobError(JobErrorCodes.CANCELLED, message), null, null, rj.last))) {
                    metrics.jobCompleted(job.method(), "cancelled");
                    log.info("{}: job {} cancelled", owner, job.id());
                    return new Result(Outcome.CANCELLED, "job " + job.id() + " " + message);
                }
                return new Result(Outcome.NOT_RECORDED, "could not record the cancellation of job " + job.id());
            } else if (rj.releaseRequested) {
                boolean released = write(owner, "release", job, () -> store.release(job.id(), owner));
                log.info("{}: job {} {} (worker stopping)", owner, job.id(), released ? "released to the queue" : "not released: lease lost");
                return released ? new Result(Outcome.RELEASED, "job " + job.id() + " was given back (worker stopping)")
                        : new Result(Outcome.LEASE_LOST, "lost the lease of job " + job.id() + " while stopping");
            } else {
                return fail(job, owner, rj, JobErrorCodes.METHOD_FAILED, message(e));
            }
        } catch (JobRejectedException e) {
            return fail(job, owner, rj, e.code(), e.getMessage());
        } catch (OutOfMemoryError e) {
            return fail(job, owner, rj, JobErrorCodes.OUT_OF_MEMORY, message(e));
        } catch (Throwable e) { // a failed job must never take the worker down
            rj.beat(); // a job that lost its lease may fail for that reason (its staging directory was cleaned up)
            if (rj.getAsBoolean() && rj.leaseLost) {
                log.warn("{}: job {} failed after losing its lease; discarded: {}", owner, job.id(), e.toString());
                return new Result(Outcome.LEASE_LOST, "job " + job.id() + " failed after losing its lease: " + message(e));
            }
            log.warn("{}: job {} failed", owner, job.id(), e);
            return fail(job, owner, rj, JobErrorCodes.METHOD_FAILED, message(e));
        } finally {
            if (beat != null) {
                beat.cancel(false);
            }
            active.remove(owner);
        }
    }

    private Result fail(Job job, String owner, RunningJob rj, String code, String message) {
        if (rj.leaseLost) {
            return new Result(Outcome.LEASE_LOST, "lost the lease of job " + job.id() + " (it failed: " + code + " " + message + ")");
        }
        if (write(owner, "failure", job, () -> store.finish(job.id(), owner, JobState.FAILED, new JobError(code, message),
                null, null, rj.last))) {
            metrics.jobCompleted(job.method(), "failed");
            log.info("{}: job {} failed: {} {}", owner, job.id(), code, message);
            return new Result(Outcome.FAILED, "job " + job.id() + " failed: " + code + " " + message);
        }
        return new Result(Outcome.NOT_RECORDED, "could not record the failure of job " + job.id() + ": " + code + " " + message);
    }

    /**
     * Makes a fenced write of a job's outcome, retrying a few times when the database fails; false when the lease is
     * lost or the database stays unreachable (the lease then expires and another attempt takes the job).
     */
    private static boolean write(String owner, String what, Job job, BooleanSupplier write) {
        for (int attempt = 1; ; attempt++) {
            try {
                return write.getAsBoolean();
            } catch (RuntimeException e) {
                if (attempt >= 3) {
                    log.error("{}: could not record the {} of job {}: {}", owner, what, job.id(), e.toString());
                    return false;
                }
                try {
                    Thread.sleep(500L * attempt);
                } catch (InterruptedException ie) {
                    Thread.currentThread().interrupt();
                    return false;
                }
            }
        }
    }

    private void recordSuccess(Job job, JobExecutor.Execution ex, Duration took) {
        String method = job.method();
        metrics.jobCompleted(method, "succeeded");
        String device = ex.device() == null ? settings.device() : ex.device();
        int colon = device.indexOf(':');
        metrics.jobDuration(method, colon < 0 ? device : device.substring(0, colon), took);
        JsonNode report = ex.reportJson();
        report.path("timings").properties().forEach(e -> {
            if (!e.getKey().equals("total") && e.getValue().isNumber()) {
                metrics.stageDuration(method, e.getKey(), Duration.ofNanos((long) (e.getValue().asDouble() * 1e9)));
            }
        });
        JsonNode peak = report.has("peak_device_bytes") ? report.path("peak_device_bytes") : report.path("peak_host_bytes");
        if (peak.isNumber()) {
            metrics.jobDevicePeakMemory(method, peak.asLong());
        }
        metrics.bytesProcessed(method, ex.bytesProcessed());
        // a benchmark job's measurements (its method's report, result.benchmark_results) become the
        // whittle.benchmark.* gauges
        for (JsonNode r : report.path("result").path("benchmark_results")) {
            if (r.path("op").isString() && r.path("throughput").isNumber() && r.path("efficiency").isNumber()) {
                metrics.benchmarkResult(r.path("op").stringValue(),
                        r.path("shape").isString() ? r.path("shape").stringValue() : "",
                        r.path("device").isString() ? r.path("device").stringValue() : device,
                        r.path("throughput").asDouble(), r.path("efficiency").asDouble());
            }
        }
    }

    /** Takes a published output that cannot be recorded out of sight (rename), then deletes it. */
    private static void withdraw(Path output) {
        try {
            Path hidden = output.resolveSibling("." + output.getFileName() + ".whittle-withdrawn-" + UUID.randomUUID());
            Files.move(output, hidden, StandardCopyOption.ATOMIC_MOVE);
            EngineJobExecutor.deleteRecursively(hidden);
        } catch (IOException e) {
            log.error("could not withdraw {}: {}", output, e.toString());
        }
    }

    private static String message(Throwable e) {
        String m = e.getMessage();
        return m == null || m.isBlank() ? e.getClass().getSimpleName() : m;
    }

    /** The state of one running attempt: progress recording, lease heartbeats and the cancellation signal. */
    private final class RunningJob implements JobProgress, BooleanSupplier {

        final Job job;
        final String owner;
        volatile boolean leaseLost;
        volatile boolean cancelRequested;
        volatile boolean releaseRequested;
        /** Until when (System.nanoTime) the last confirmed heartbeat keeps the lease ours. */
        volatile long leaseValidUntil;
        volatile Progress last = Progress.NONE;
        private String lastWrittenStage;
        private long lastWrite;

        RunningJob(Job job, String owner) {
            this.job = job;
            this.owner = owner;
            this.leaseValidUntil = System.nanoTime() + settings.lease().toNanos();
        }

        /** The cancellation signal the engine polls at layer boundaries. */
        @Override
        public boolean getAsBoolean() {
            if (!leaseLost && System.nanoTime() > leaseValidUntil) {
                // no heartbeat confirmed the lease for a whole lease period: another worker may hold the job now
                leaseLost = true;
            }
            return leaseLost || cancelRequested || releaseRequested;
        }

        @Override
        public void update(String stage, int layer, int layers, double fraction) {
            Progress p = new Progress(stage, layer < 0 ? null : layer, layers, Math.max(0.0, Math.min(1.0, fraction)));
            last = p;
            if ("publish".equals(stage)) {
                fence();
            }
            long now = System.nanoTime();
            if (!stage.equals(lastWrittenStage) || now - lastWrite >= settings.progressInterval().toNanos()) {
                lastWrittenStage = stage;
                lastWrite = now;
                try {
                    if (!store.updateProgress(job.id(), owner, p)) {
                        leaseLost = true;
                    }
                } catch (RuntimeException e) {
                    log.warn("{}: recording progress of job {} failed: {}", owner, job.id(), e.toString());
                }
            }
        }

        /** Renews the lease; marks it lost when the row is no longer ours. */
        void beat() {
            long sent = System.nanoTime();
            try {
                LeaseStatus s = store.heartbeat(job.id(), owner, settings.lease());
                if (!s.held()) {
                    leaseLost = true;
                } else {
                    leaseValidUntil = sent + settings.lease().toNanos();
                    if (s.cancelRequested()) {
                        cancelRequested = true;
                    }
                }
            } catch (RuntimeException e) {
                log.warn("{}: heartbeat of job {} failed: {}", owner, job.id(), e.toString());
            }
        }

        /** Confirms the lease right before the output is published; throws when it is not ours (or cancelled). */
        private void fence() {
            beat();
            if (getAsBoolean()) {
                throw new CancellationException(leaseLost ? "lease of job " + job.id() + " lost before publishing"
                        : "job " + job.id() + " cancelled before publishing");
            }
        }
    }
}
