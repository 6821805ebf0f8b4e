package io.whittle.jobs;

import io.whittle.metrics.JobMetrics;
import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Optional;
import java.util.UUID;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The worker side of the queue: one thread per slot claims a job (a lease) and runs it through {@link JobAttempts}
 * (heartbeats, progress, cancellation, fenced outcome). On {@link #stop()} the pool stops claiming, lets running jobs
 * finish for the grace period, then asks them to stop and gives them back to the queue.
 */
public final class WorkerPool implements AutoCloseable {

    private static final Logger log = LoggerFactory.getLogger(WorkerPool.class);

    private final JobStore store;
    private final WorkerSettings settings;
    private final JobMetrics metrics;
    private final JobSignals signals;
    private final ScheduledExecutorService heartbeats;
    private final JobAttempts attempts;
    private final List<Thread> threads = new ArrayList<>();
    private volatile boolean accepting;
    private volatile boolean started;

    /**
     * @param heartbeats runs the lease heartbeats; owned (and shut down) by the pool
     */
    public WorkerPool(JobStore store, JobExecutor executor, WorkerSettings settings, JobMetrics metrics, JobSignals signals,
                      ScheduledExecutorService heartbeats) {
        this.store = store;
        this.settings = settings;
        this.metrics = metrics == null ? JobMetrics.NONE : metrics;
        this.signals = signals == null ? new JobSignals() : signals;
        this.heartbeats = heartbeats;
        this.attempts = new JobAttempts(store, executor, settings, this.metrics, heartbeats);
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
        return attempts.activeJobIds();
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
            log.info("worker {}: grace period over; releasing {} running job(s) {}", settings.workerId(),
                    attempts.activeCount(), activeJobIds());
            attempts.releaseAll();
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
                attempts.run(claimed.get(), owner);
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

    private static String outcome(JobState state) {
        return state.name().toLowerCase(Locale.ROOT);
    }
}
