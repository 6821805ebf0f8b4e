package io.whittle.api;

import io.whittle.jobs.Job;
import io.whittle.jobs.JobService;
import java.io.IOException;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.beans.factory.DisposableBean;
import org.springframework.context.SmartLifecycle;
import org.springframework.http.MediaType;
import org.springframework.stereotype.Component;
import org.springframework.web.servlet.mvc.method.annotation.SseEmitter;

/**
 * The server-sent event streams of jobs. The job table is the source: the job may run in another process, so one
 * poller reads each watched job at a fixed interval and sends an event when it changed ({@code state} when the
 * state did, {@code progress} otherwise, the job as data), and closes the stream after the final state.
 */
@Component
public class JobEventStreams implements DisposableBean, SmartLifecycle {

    private static final Logger log = LoggerFactory.getLogger(JobEventStreams.class);
    /** A comment line this often keeps idle connections open through proxies. */
    private static final long KEEPALIVE_NANOS = 15_000_000_000L;

    private final JobService jobs;
    private final long timeoutMillis;
    private final Map<SseEmitter, Watch> watches = new ConcurrentHashMap<>();
    private final ScheduledExecutorService poller;
    private final AtomicLong eventIds = new AtomicLong();
    private volatile boolean running;

    private static final class Watch {
        final String jobId;
        final SseEmitter emitter;
        String lastSignature;
        String lastState;
        long lastSent = System.nanoTime();
        boolean done;

        Watch(String jobId, SseEmitter emitter) {
            this.jobId = jobId;
            this.emitter = emitter;
        }
    }

    public JobEventStreams(JobService jobs, ApiSettings settings) {
        this.jobs = jobs;
        this.timeoutMillis = settings.eventsTimeout().toMillis();
        this.poller = Executors.newSingleThreadScheduledExecutor(r -> {
            Thread t = new Thread(r, "whittle-job-events");
            t.setDaemon(true);
            return t;
        });
        long every = Math.max(10, settings.eventsPollInterval().toMillis());
        poller.scheduleWithFixedDelay(this::pollSafely, every, every, TimeUnit.MILLISECONDS);
    }

    /** Opens a stream for the job and sends its current state as the first event. */
    public SseEmitter open(Job job) {
        SseEmitter emitter = new SseEmitter(timeoutMillis);
        Watch w = new Watch(job.id(), emitter);
        emitter.onCompletion(() -> watches.remove(emitter));
        emitter.onTimeout(() -> {
            watches.remove(emitter);
            emitter.complete();
        });
        emitter.onError(e -> watches.remove(emitter));
        synchronized (w) {
            watches.put(emitter, w);
            send(w, job);
        }
        return emitter;
    }

    private void pollSafely() {
        try {
            poll();
        } catch (RuntimeException e) {
            log.warn("job event poll failed: {}", e.toString());
        }
    }

    private void poll() {
        if (watches.isEmpty()) {
            return;
        }
        Map<String, Optional<Job>> current = new ConcurrentHashMap<>();
        for (Watch w : List.copyOf(watches.values())) {
            Optional<Job> job = current.computeIfAbsent(w.jobId, jobs::get);
            synchronized (w) {
                if (w.done) {
                    continue;
                }
                if (job.isEmpty()) {
                    w.done = true;
                    w.emitter.complete();
                    watches.remove(w.emitter);
                    continue;
                }
                send(w, job.get());
                if (!w.done && System.nanoTime() - w.lastSent > KEEPALIVE_NANOS) {
                    try {
                        w.emitter.send(SseEmitter.event().comment("keepalive"));
                        w.lastSent = System.nanoTime();
                    } catch (IOException | IllegalStateException e) {
                        drop(w);
                    }
                }
            }
        }
    }

    /** Sends the job when it changed since the last event; completes the stream after a final state. */
    private void send(Watch w, Job job) {
        Job.Progress p = job.progress();
        String signature = job.state() + "|" + job.attempt() + "|" + p.stage() + "|" + p.layer() + "|" + p.layers() + "|"
                + p.fraction() + "|" + job.cancelRequested() + "|" + job.device() + "|" + job.kubernetes();
        if (signature.equals(w.lastSignature)) {
            return;
        }
        String name = Objects.equals(w.lastState, job.state().name()) ? "progress" : "state";
        try {
            w.emitter.send(SseEmitter.event().id(Long.toString(eventIds.incrementAndGet())).name(name)
                    .data(JobView.of(job), MediaType.APPLICATION_JSON));
            w.lastSignature = signature;
            w.lastState = job.state().name();
            w.lastSent = System.nanoTime();
            if (job.state().isFinal()) {
                w.done = true;
                watches.remove(w.emitter);
                w.emitter.complete();
            }
        } catch (IOException | IllegalStateException e) {
            drop(w); // the client went away
        }
    }

    private void drop(Watch w) {
        w.done = true;
        watches.remove(w.emitter);
        try {
            w.emitter.complete();
        } catch (IllegalStateException ignored) {
            // already completed
        }
    }

    /** Number of open streams (for tests and diagnostics). */
    public int openStreams() {
        return watches.size();
    }

    @Override
    public void start() {
        running = true;
    }

    /**
     * Ends the open streams when the service stops, after the workers (which may still report a released job) and
     * before the web server's graceful shutdown, which would otherwise wait for these long requests.
     */
    @Override
    public void stop() {
        running = false;
        try {
            poll(); // the last state the workers left
        } catch (RuntimeException e) {
            log.debug("final event poll failed: {}", e.toString());
        }
        for (Watch w : List.copyOf(watches.values())) {
            synchronized (w) {
                drop(w);
            }
        }
    }

    @Override
    public boolean isRunning() {
        return running;
    }

    @Override
    public int getPhase() {
        return Integer.MAX_VALUE - 100;
    }

    @Override
    public void destroy() {
        poller.shutdownNow();
        for (Watch w : List.copyOf(watches.values())) {
            drop(w);
        }
    }
}
