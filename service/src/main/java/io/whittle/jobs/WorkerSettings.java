package io.whittle.jobs;

import java.time.Duration;
import java.util.List;

/**
 * How a worker process claims and runs jobs.
 *
 * @param workerId          this process's name in {@code lease_owner} (slots append {@code /slot-N}); unique per start
 * @param slots             jobs run at once (one per GPU, or a configured number on CPU)
 * @param backends          the requested backends this worker can serve ({@code auto}, {@code cpu}, {@code cuda})
 * @param device            the device recorded on a claimed job until its run reports the one it used
 * @param lease             how long a claim is valid without a heartbeat
 * @param heartbeat         how often a running job's lease is renewed (and its cancel flag read)
 * @param pollInterval      how long an idle slot waits before looking for work again
 * @param progressInterval  least time between two progress writes of one job (stage changes are written at once)
 * @param shutdownGrace     how long a stopping worker lets running jobs finish
 * @param releaseTimeout    how long it then waits for them to stop at a layer boundary and go back to the queue
 */
public record WorkerSettings(String workerId, int slots, List<String> backends, String device, Duration lease,
                             Duration heartbeat, Duration pollInterval, Duration progressInterval, Duration shutdownGrace,
                             Duration releaseTimeout) {

    public WorkerSettings {
        if (slots < 1) {
            throw new IllegalArgumentException("worker slots must be at least 1, got " + slots);
        }
        if (heartbeat.compareTo(lease) >= 0) {
            throw new IllegalArgumentException("the heartbeat interval (" + heartbeat + ") must be shorter than the lease ("
                    + lease + "), or every lease expires between two heartbeats");
        }
        backends = List.copyOf(backends);
    }
}
