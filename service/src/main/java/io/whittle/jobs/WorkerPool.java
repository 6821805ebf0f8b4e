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
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.UUID;
import java.util.concurrent.CancellationException;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import tools.jackson.databind.JsonNode;

/**
 * The worker side of the queue: one thread per slot claims a job (a lease), runs it with the {@link JobExecutor}
 * while a heartbeat renews the lease and reads the cancel flag, and records the outcome. Fencing: every write is
 * conditional on still holding the lease; a heartbeat that finds the lease lost (or no heartbeat succeeding for a
 * whole lease) makes the run cancel at its next layer boundary and discards its result, and the lease is confirmed
 * once more right before the output is published. On {@link #stop()} the pool stops claiming, lets running jobs
 * finish for the grace period, then asks them to stop and gives them back to the queue.
 */
public final class WorkerPool implements AutoCloseable {

    private static final Logger log = LoggerFactory.getLogger(WorkerPool.class);

    private final JobStore store;
    private final JobExecutor executor;
    private final WorkerSettings settings;
    private final JobMetrics metrics;
    private final JobSignals signals;
    private final ScheduledExecutorService heartbeats;
    private final Map<String, RunningJob> active = new ConcurrentHashMap<>();
    private final List<Thread> threads = new ArrayList<>();
    private volatile boolean accepting;
    private volatile boolean started;

    /**
     * @param heartbeats runs the lease heartbeats; owned (and shut down) by the pool
     */
    public WorkerPool(JobStore store, JobExecutor executor, WorkerSettings settings, JobMetrics metrics, JobSignals signals,
                      ScheduledExecutorService heartbeats) {
        this.store = store;
        this.executor = executor;
        this.settings = settings;
        this.metrics = metrics == null ? JobMetrics.NONE : metrics;
        this.signals = signals == null ? new JobSignals() : signals;
        this.heartbeats = heartbeats;
    }

    public WorkerPool(JobStore store, JobExecutor executor, WorkerSettings settings, JobMetrics metrics, JobSignals signals) {
        this(store, executor, settings, metrics, signals, Executors.newScheduledThreadPool(1, r -> {
            Thread t = new Thread(r, "whittle-heartbeat-" + settings.workerId());
            t.setDaemon(true);
            return t;
        }));
    }

    /** A process-unique worker name: host, pid and a random suffix (a restarted process never reuses old leases). */
    public static String defaultWorkerId() {
        String host;
        try {
            host = java.net.InetAddress.getLocalHost().getHostName();
        } catch (IOException e) {
            host = "localhost";
        }
        return host + ":" + ProcessHandle.current().pid() + ":" + UUID.randomUUID().toString().substring(0, 8);
    }

    public WorkerSettings settings() {
        return settings;
    }

    /** Starts the slot threads. */
    public synchronized void start() {
        if (started) {
            return;
        }
        started = true;
        accepting = true;
        for (int i = 0; i < settings.slots(); i++) {
            String owner = settings.workerId() + "/slot-" + i;
            Thread t = new Thread(() -> slotLoop(owner), "whittle-worker-" + i);
            t.setDaemon(false);
            threads.add(t);
            t.start();
        }
        log.info("worker {} started: {} slot(s), backends {}, lease {}, heartbeat {}", settings.workerId(), settings.slots(),
                settings.backends(), settings.lease(), settings.heartbeat());
    }

    public boolean isRunning() {
        return started && accepting;
    }

    /** The ids of the jobs this pool is running now. */
    public List<String> activeJobIds() {
        return active.values().stream().map(r -> r.job.id()).toList();
    }

    /**
     * Stops claiming; waits up to the grace period for running jobs to finish, then asks the rest to stop at their next
     * layer boundary and puts them back in the queue (or cancels them when a cancel was requested), waiting up to the
     * release timeout.
     */
    public synchronized void stop() {
        if (!started) {
            return;
        }
        accepting = false;
        signals.signal();
        long deadline = System.nanoTime() + settings.shutdownGrace().toNanos();
        joinAll(deadline);
        if (threads.stream().anyMatch(Thread::isAlive)) {
            log.info("worker {}: grace period over; releasing {} running job(s) {}", settings.workerId(), active.size(),
                    activeJobIds());
            active.values().forEach(r -> r.releaseRequested = true);
            joinAll(System.nanoTime() + settings.releaseTimeout().toNanos());
        }
        for (Thread t : threads) {
            if (t.isAlive()) {
                log.warn("worker {}: {} did not stop within the release timeout; its lease will expire and another worker "
                        + "will take the job", settings.workerId(), t.getName());
            }
        }
        heartbeats.shutdownNow();
        started = false;
    }

    @Override
    public void close() {
        stop();
    }

    private void joinAll(long deadlineNanos) {
        for (Thread t : threads) {
            long left = deadlineNanos - System.nanoTime();
            if (left > 0) {
                try {
                    t.join(Math.max(1, left / 1_000_000));
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    return;
                }
            }
        }
    }

    private void slotLoop(String owner) {
        while (accepting) {
            Optional<Job> claimed;
            try {
                claimed = store.claim(owner, settings.lease(), settings.backends(), settings.device(),
                        closed -> metrics.jobCompleted(closed.method(), outcome(closed.state())));
            } catch (RuntimeException e) {
                log.warn("worker {}: claiming failed: {}", owner, e.toString());
                if (!pause()) {
                    return;
                }
                continue;
            }
            if (claimed.isEmpty()) {
                if (!pause()) {
                    return;
                }
                continue;
            }
            try {
                run(claimed.get(), owner);
            } catch (RuntimeException e) { // never let one job end the slot
                log.error("{}: running job {} failed unexpectedly", owner, claimed.get().id(), e);
            }
        }
    }

    /** Waits for a submission signal or the poll interval; false when interrupted. */
    private boolean pause() {
        try {
            signals.await(settings.pollInterval());
            return true;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return false;
        }
    }

    private void run(Job job, String owner) {
        RunningJob rj = new RunningJob(job, owner);
        active.put(owner, rj);
        log.info("{}: running job {} ({}, attempt {}/{})", owner, job.id(), job.method(), job.attempt(), job.maxAttempts());
        long hb = settings.heartbeat().toMillis();
        ScheduledFuture<?> beat = null;
        long start = System.nanoTime();
        try {
            try {
                beat = heartbeats.scheduleWithFixedDelay(rj::beat, hb, hb, TimeUnit.MILLISECONDS);
            } catch (java.util.concurrent.RejectedExecutionException e) {
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
            } else {
                // unrecorded, the output must not stay: the attempt that owns the job (now or after this lease
                // expires) publishes its own
                log.warn("{}: could not record the success of job {} (lease lost or database unreachable); withdrawing {}",
                        owner, job.id(), ex.output());
                withdraw(ex.output());
            }
        } catch (CancellationException e) {
            if (rj.leaseLost) {
                log.warn("{}: lost the lease of job {}; its work is discarded", owner, job.id());
            } else if (rj.cancelRequested) {
                if (write(owner, "cancellation", job, () -> store.finish(job.id(), owner, JobState.CANCELLED,
                        new JobError(JobErrorCodes.CANCELLED, "cancelled by request during stage " + rj.last.stage()), null,
                        null, rj.last))) {
                    metrics.jobCompleted(job.method(), "cancelled");
                }
                log.info("{}: job {} cancelled", owner, job.id());
            } else if (rj.releaseRequested) {
                boolean released = write(owner, "release", job, () -> store.release(job.id(), owner));
                log.info("{}: job {} {} (worker stopping)", owner, job.id(), released ? "released to the queue" : "not released: lease lost");
            } else {
                fail(job, owner, rj, JobErrorCodes.METHOD_FAILED, message(e));
            }
        } catch (JobRejectedException e) {
            fail(job, owner, rj, e.code(), e.getMessage());
        } catch (OutOfMemoryError e) {
            fail(job, owner, rj, JobErrorCodes.OUT_OF_MEMORY, message(e));
        } catch (Throwable e) { // a failed job must never take the worker down
            rj.beat(); // a job that lost its lease may fail for that reason (its staging directory was cleaned up)
            if (rj.getAsBoolean() && rj.leaseLost) {
                log.warn("{}: job {} failed after losing its lease; discarded: {}", owner, job.id(), e.toString());
            } else {
                log.warn("{}: job {} failed", owner, job.id(), e);
                fail(job, owner, rj, JobErrorCodes.METHOD_FAILED, message(e));
            }
        } finally {
            if (beat != null) {
                beat.cancel(false);
            }
            active.remove(owner);
        }
    }

    private void fail(Job job, String owner, RunningJob rj, String code, String message) {
        if (rj.leaseLost) {
            return;
        }
        if (write(owner, "failure", job, () -> store.finish(job.id(), owner, JobState.FAILED, new JobError(code, message),
                null, null, rj.last))) {
            metrics.jobCompleted(job.method(), "failed");
        }
        log.info("{}: job {} failed: {} {}", owner, job.id(), code, message);
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

    private static String outcome(JobState state) {
        return state.name().toLowerCase(Locale.ROOT);
    }

    private static String message(Throwable e) {
        String m = e.getMessage();
        return m == null || m.isBlank() ? e.getClass().getSimpleName() : m;
    }

    /** The state of one job this pool runs: progress recording, lease heartbeats and the cancellation signal. */
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
