package io.whittle.jobs;

import io.whittle.metrics.JobMetrics;
import java.util.Locale;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Runs exactly one named job: the work of a Kubernetes Job's pod ({@code whittle worker --job <id>}). It claims that
 * row and no other, with the same lease, heartbeat and fencing as any worker slot ({@link JobAttempts}). A job that
 * another worker holds is taken once that worker's lease expires (the pod before this one died) if that happens
 * within one lease period, and refused otherwise (its holder is alive). The exit codes tell Kubernetes whether another pod could
 * help: {@link #EXIT_RETRY} lets the Job's {@code backoffLimit} retry, {@link #EXIT_FINAL} ends the Job at once
 * (the executor's {@code podFailurePolicy} fails the Job on it).
 */
public final class SingleJobWorker {

    private static final Logger log = LoggerFactory.getLogger(SingleJobWorker.class);

    /** The job succeeded (now, or already before). */
    public static final int EXIT_SUCCEEDED = 0;
    /**
     * Nothing final happened (another worker holds the job, the lease was lost, the outcome could not be recorded, the
     * worker was stopped and gave the job back): another pod may run it.
     */
    public static final int EXIT_RETRY = 1;
    /** The job has ended without success (failed, cancelled) or does not exist: another pod cannot help. */
    public static final int EXIT_FINAL = 3;

    /** How the run ended: the process exit code and one line saying why. */
    public record Result(int exitCode, String message) {
    }

    private final JobStore store;
    private final WorkerSettings settings;
    private final JobMetrics metrics;
    private final ScheduledExecutorService heartbeats;
    private final JobAttempts attempts;
    private final Object lock = new Object();
    private boolean stopping;
    private boolean running;

    public SingleJobWorker(JobStore store, JobExecutor executor, WorkerSettings settings, JobMetrics metrics) {
        this.store = store;
        this.settings = settings;
        this.metrics = metrics == null ? JobMetrics.NONE : metrics;
        this.heartbeats = Executors.newSingleThreadScheduledExecutor(r -> {
            Thread t = new Thread(r, "whittle-heartbeat-" + settings.workerId());
            t.setDaemon(true);
            return t;
        });
        this.attempts = new JobAttempts(store, executor, settings, this.metrics, heartbeats);
    }

    /** Claims job {@code jobId} (only that one), runs it and says how it ended. Call once. */
    public Result run(String jobId) {
        synchronized (lock) {
            if (stopping) {
                return new Result(EXIT_RETRY, "worker stopped before claiming job " + jobId);
            }
            running = true;
        }
        try {
            return claimAndRun(jobId);
        } finally {
            heartbeats.shutdownNow();
            synchronized (lock) {
                running = false;
                lock.notifyAll();
            }
        }
    }

    private Result claimAndRun(String jobId) {
        String owner = settings.workerId();
        JobClaim claim = claim(jobId, owner);
        // The pod before this one may have died holding the job: its lease runs out within one lease period (the
        // one every worker uses), and waiting for it keeps the retry from failing (and counting against the Job's
        // backoffLimit). A holder that goes on renewing is alive: after that long the job is left to it.
        long deadline = System.nanoTime() + settings.lease().plus(settings.heartbeat()).toNanos();
        while (claim instanceof JobClaim.Refused r && r.reason() == JobClaim.Reason.HELD && System.nanoTime() < deadline) {
            log.info("{}: {}; waiting for that lease to expire", owner, r.message());
            synchronized (lock) {
                if (stopping) {
                    return new Result(EXIT_RETRY, "worker stopped while waiting for job " + jobId);
                }
                try {
                    lock.wait(Math.max(1, Math.min(settings.heartbeat().toMillis(), (deadline - System.nanoTime()) / 1_000_000)));
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    return new Result(EXIT_RETRY, "interrupted while waiting for job " + jobId);
                }
            }
            claim = claim(jobId, owner);
        }
        if (claim instanceof JobClaim.Refused refused) {
            log.info("{}: {}", owner, refused.message());
            return switch (refused.reason()) {
                case NOT_FOUND -> new Result(EXIT_FINAL, refused.message());
                case HELD -> new Result(EXIT_RETRY, refused.message() + "; not taken");
                case FINISHED -> refused.state() == JobState.SUCCEEDED
                        ? new Result(EXIT_SUCCEEDED, refused.message() + "; nothing to do")
                        : new Result(EXIT_FINAL, refused.message());
            };
        }
        Job job = ((JobClaim.Claimed) claim).job();
        boolean stopNow;
        synchronized (lock) {
            stopNow = stopping;
        }
        if (stopNow) { // stopped while claiming: give the job straight back
            boolean released = store.release(job.id(), owner);
            return new Result(EXIT_RETRY, "worker stopped right after claiming job " + job.id()
                    + (released ? "; given back" : "; lease already lost"));
        }
        JobAttempts.Result r = attempts.run(job, owner);
        return switch (r.outcome()) {
            case SUCCEEDED -> new Result(EXIT_SUCCEEDED, r.message());
            case FAILED, CANCELLED -> new Result(EXIT_FINAL, r.message());
            case RELEASED -> store.find(job.id()).map(Job::state).filter(JobState::isFinal).isPresent()
                    ? new Result(EXIT_FINAL, "job " + job.id() + " was cancelled while its worker stopped")
                    : new Result(EXIT_RETRY, r.message());
            case LEASE_LOST, NOT_RECORDED -> new Result(EXIT_RETRY, r.message());
        };
    }

    private JobClaim claim(String jobId, String owner) {
        return store.claimJob(jobId, owner, settings.lease(), settings.device(),
                closed -> metrics.jobCompleted(closed.method(), closed.state().name().toLowerCase(Locale.ROOT)));
    }

    /**
     * Stops the run (SIGTERM): the job stops at its next layer boundary and goes back to the queue (or is cancelled,
     * when a cancel was requested). Waits up to the release timeout for {@link #run} to return.
     */
    public void stop() {
        long deadline = System.nanoTime() + settings.releaseTimeout().toNanos();
        synchronized (lock) {
            stopping = true;
            lock.notifyAll(); // a run waiting for another worker's lease gives up now
            while (running) {
                attempts.releaseAll(); // again on every turn: the attempt may register after the first call
                long left = deadline - System.nanoTime();
                if (left <= 0) {
                    log.warn("{}: the job did not stop within the release timeout ({}); its lease will expire",
                            settings.workerId(), settings.releaseTimeout());
                    return;
                }
                try {
                    lock.wait(Math.max(1, Math.min(100, left / 1_000_000)));
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    return;
                }
            }
        }
    }
}
