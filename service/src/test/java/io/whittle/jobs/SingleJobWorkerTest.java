package io.whittle.jobs;

import static org.assertj.core.api.Assertions.assertThat;

import com.zaxxer.hikari.HikariDataSource;
import io.whittle.metrics.JobMetrics;
import io.whittle.testing.TestDatabases;
import java.nio.file.Path;
import java.time.Clock;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CancellationException;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The single-job worker's outcomes and exit codes: a failure is final (3), a stop (SIGTERM) gives the job back to
 * the queue without counting the attempt (1), or cancels it when a cancel was requested (3); the job of a pod that
 * died is taken over when its lease expires, and one whose holder keeps renewing is left to it (1).
 */
class SingleJobWorkerTest {

    @TempDir
    Path dir;
    HikariDataSource dataSource;
    JobStore store;

    @BeforeEach
    void setUp() {
        TestDatabases.Database db = TestDatabases.h2(dir, false);
        db.migrate();
        dataSource = db.dataSource(4);
        store = new JobStore(dataSource, Clock.systemUTC());
    }

    @AfterEach
    void tearDown() {
        dataSource.close();
    }

    static WorkerSettings settings() {
        return settings(Duration.ofSeconds(5));
    }

    static WorkerSettings settings(Duration lease) {
        return new WorkerSettings("whittle-j-pod1", 1, List.of("auto", "cpu"), "cpu", lease,
                Duration.ofMillis(100), Duration.ofMillis(50), Duration.ofMillis(10), Duration.ZERO, Duration.ofSeconds(10));
    }

    static JobExecutor succeeding() {
        return (job, progress, cancelled) -> {
            progress.update("compress", 0, 1, 1.0);
            Path out = Path.of(job.output());
            return new JobExecutor.Execution(out, out.resolve("report.json"),
                    tools.jackson.databind.json.JsonMapper.builder().build().createObjectNode(), "cpu", 0);
        };
    }

    @Test
    void theJobOfAPodThatDiedIsTakenOverOnceItsLeaseExpires() {
        store.insert(job("j"));
        assertThat(store.claimJob("j", "whittle-j-pod0", Duration.ofMillis(400), "cpu", x -> {
        })).isInstanceOf(JobClaim.Claimed.class); // pod0 then dies: nothing renews its lease
        SingleJobWorker.Result r = new SingleJobWorker(store, succeeding(), settings(), JobMetrics.NONE).run("j");
        assertThat(r.exitCode()).as(r.message()).isEqualTo(SingleJobWorker.EXIT_SUCCEEDED);
        Job done = store.find("j").orElseThrow();
        assertThat(done.state()).isEqualTo(JobState.SUCCEEDED);
        assertThat(done.attempt()).isEqualTo(2);
    }

    @Test
    void aJobWhoseHolderKeepsRenewingIsLeftToIt() throws Exception {
        store.insert(job("j"));
        store.claimJob("j", "whittle-j-pod0", Duration.ofMillis(300), "cpu", x -> {
        });
        java.util.concurrent.ScheduledExecutorService holder = java.util.concurrent.Executors.newSingleThreadScheduledExecutor();
        try {
            holder.scheduleWithFixedDelay(() -> store.heartbeat("j", "whittle-j-pod0", Duration.ofMillis(300)), 50, 50,
                    TimeUnit.MILLISECONDS);
            SingleJobWorker.Result r = new SingleJobWorker(store, succeeding(), settings(Duration.ofMillis(500)),
                    JobMetrics.NONE).run("j");
            assertThat(r.exitCode()).isEqualTo(SingleJobWorker.EXIT_RETRY);
            assertThat(r.message()).startsWith("job j is held by whittle-j-pod0 until ").endsWith("; not taken");
        } finally {
            holder.shutdownNow();
            holder.awaitTermination(5, TimeUnit.SECONDS);
        }
        Job held = store.find("j").orElseThrow();
        assertThat(held.leaseOwner()).isEqualTo("whittle-j-pod0");
        assertThat(held.attempt()).isEqualTo(1);
    }

    static NewJob job(String id) {
        return new NewJob(id, "noop", 0, "/m", null, null, "/o/" + id, "{}", null, "auto", null, null, 3);
    }

    /** An executor that reports layers until it is told to stop (as the engine does at layer boundaries). */
    static JobExecutor untilCancelled(CountDownLatch started) {
        return (job, progress, cancelled) -> {
            for (int layer = 0; ; layer++) {
                progress.update("compress", layer, 1000, layer / 1000.0);
                started.countDown();
                if (cancelled.getAsBoolean()) {
                    throw new CancellationException("stopped at layer " + layer);
                }
                Thread.sleep(5);
            }
        };
    }

    @Test
    void aFailedJobIsFinal() {
        store.insert(job("j"));
        SingleJobWorker worker = new SingleJobWorker(store, (job, progress, cancelled) -> {
            throw new IllegalStateException("boom at layer 3");
        }, settings(), JobMetrics.NONE);
        SingleJobWorker.Result r = worker.run("j");
        assertThat(r).isEqualTo(new SingleJobWorker.Result(SingleJobWorker.EXIT_FINAL, "job j failed: METHOD_FAILED boom at layer 3"));
        Job failed = store.find("j").orElseThrow();
        assertThat(failed.state()).isEqualTo(JobState.FAILED);
        assertThat(failed.error()).isEqualTo(new Job.JobError(JobErrorCodes.METHOD_FAILED, "boom at layer 3"));
        assertThat(new SingleJobWorker(store, (job, p, c) -> null, settings(), JobMetrics.NONE).run("j"))
                .isEqualTo(new SingleJobWorker.Result(SingleJobWorker.EXIT_FINAL, "job j has already finished (FAILED)"));
    }

    @Test
    void aStoppedWorkerGivesItsJobBackToTheQueue() throws Exception {
        store.insert(job("j"));
        CountDownLatch started = new CountDownLatch(1);
        SingleJobWorker worker = new SingleJobWorker(store, untilCancelled(started), settings(), JobMetrics.NONE);
        CompletableFuture<SingleJobWorker.Result> run = CompletableFuture.supplyAsync(() -> worker.run("j"));
        assertThat(started.await(30, TimeUnit.SECONDS)).isTrue();
        assertThat(store.find("j").orElseThrow().leaseOwner()).isEqualTo("whittle-j-pod1");
        worker.stop(); // SIGTERM
        assertThat(run.isDone()).as("stop() waits for the run to end").isTrue();
        assertThat(run.get()).isEqualTo(new SingleJobWorker.Result(SingleJobWorker.EXIT_RETRY,
                "job j was given back (worker stopping)"));
        Job released = store.find("j").orElseThrow();
        assertThat(released.state()).isEqualTo(JobState.QUEUED);
        assertThat(released.attempt()).as("not counted").isZero();
        assertThat(released.leaseOwner()).isNull();
    }

    @Test
    void aWorkerStoppedByACancellationRecordsIt() throws Exception {
        store.insert(job("j"));
        CountDownLatch started = new CountDownLatch(1);
        SingleJobWorker worker = new SingleJobWorker(store, untilCancelled(started), settings(), JobMetrics.NONE);
        CompletableFuture<SingleJobWorker.Result> run = CompletableFuture.supplyAsync(() -> worker.run("j"));
        assertThat(started.await(30, TimeUnit.SECONDS)).isTrue();
        assertThat(store.requestCancel("j")).isEqualTo(JobStore.CancelOutcome.REQUESTED);
        worker.stop(); // the Kubernetes Job was deleted: SIGTERM, and the cancel flag is set
        SingleJobWorker.Result r = run.get(30, TimeUnit.SECONDS);
        assertThat(r.exitCode()).isEqualTo(SingleJobWorker.EXIT_FINAL);
        Job cancelled = store.find("j").orElseThrow();
        assertThat(cancelled.state()).isEqualTo(JobState.CANCELLED);
        assertThat(cancelled.error().code()).isEqualTo(JobErrorCodes.CANCELLED);
    }
}
