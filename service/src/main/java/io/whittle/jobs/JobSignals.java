package io.whittle.jobs;

import java.time.Duration;

/**
 * Wakes idle worker slots of this process when a job is submitted here, so that a single-process service starts a
 * job at once instead of at the next poll. Workers in other processes still find it by polling.
 */
public final class JobSignals {

    private final Object lock = new Object();
    private long generation;

    /** A job was submitted (or workers should re-check their state, e.g. when stopping). */
    public void signal() {
        synchronized (lock) {
            generation++;
            lock.notifyAll();
        }
    }

    /** Waits until the next {@link #signal()} or for at most {@code max}. */
    public void await(Duration max) throws InterruptedException {
        long deadline = System.nanoTime() + max.toNanos();
        synchronized (lock) {
            long seen = generation;
            while (generation == seen) {
                long left = deadline - System.nanoTime();
                if (left <= 0) {
                    return;
                }
                lock.wait(Math.max(1, left / 1_000_000));
            }
        }
    }
}
