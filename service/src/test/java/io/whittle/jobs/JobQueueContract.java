package io.whittle.jobs;

import static org.assertj.core.api.Assertions.assertThat;

import com.zaxxer.hikari.HikariDataSource;
import io.whittle.jobs.Job.JobOutput;
import io.whittle.jobs.Job.Progress;
import io.whittle.metrics.JobMetrics;
import io.whittle.model.Checkpoint;
import io.whittle.testing.ScaleMethod;
import io.whittle.testing.TestDatabases;
import io.whittle.testing.TestModels;
import io.whittle.tensor.FloatTensor;
import io.whittle.tensor.HostAllocator;
import java.io.File;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Clock;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import tools.jackson.databind.json.JsonMapper;

/**
 * The queue's guarantees, run against H2 ({@link JobQueueH2Test}) and PostgreSQL ({@link JobQueuePostgresTest})
 * with the same SQL: exactly-once execution under concurrent workers, lease expiry after a killed worker, fencing
 * of a worker that lost its lease, release on shutdown, and attempts running out.
 */
abstract class JobQueueContract {

    static final Duration LEASE = Duration.ofMillis(1500);
    static final Duration HEARTBEAT = Duration.ofMillis(300);
    static final Duration WAIT = Duration.ofSeconds(60);

    @TempDir
    Path dir;
    TestDatabases.Database db;
    HikariDataSource dataSource;
    JobStore store;
    Path models;
    Path outputs;
    Path model;
    Path calibration;
    StorageRoots roots;
    JobService service;
    final List<WorkerPool> pools = new ArrayList<>();

    /** The database under test (a child process must be able to open it too). */
    abstract TestDatabases.Database database(Path dir);

    @BeforeEach
    void setUp() throws Exception {
        db = database(dir);
        db.migrate();
        dataSource = db.dataSource(12);
        store = new JobStore(dataSource, Clock.systemUTC());
        models = Files.createDirectories(dir.resolve("models"));
        outputs = dir.resolve("outputs");
        roots = new StorageRoots(List.of(models), outputs);
        service = new JobService(store, roots, JobMetrics.NONE, new JobSignals(), 3);
    }

    @AfterEach
    void tearDown() {
        pools.forEach(WorkerPool::stop);
        if (dataSource != null) {
            dataSource.close();
        }
        if (db != null) {
            db.close();
        }
    }

    private void tinyModel(int layers) throws Exception {
        model = models.resolve("tiny");
        TestModels.tinyMoe(model, layers, 42);
        calibration = TestModels.tokens(models.resolve("calibration.json"), 2, 16, 128, 7);
    }

    private WorkerSettings settings(String id, Duration grace) {
        return new WorkerSettings(id, 1, List.of("auto", "cpu"), "cpu", LEASE, HEARTBEAT, Duration.ofMillis(20),
                Duration.ofMillis(50), grace, Duration.ofSeconds(20));
    }

    private WorkerPool pool(WorkerSettings settings, JobExecutor executor, JobMetrics metrics,
                            ScheduledExecutorService heartbeats) {
        WorkerPool p = heartbeats == null ? new WorkerPool(store, executor, settings, metrics, new JobSignals())
                : new WorkerPool(store, executor, settings, metrics, new JobSignals(), heartbeats);
        pools.add(p);
        p.start();
        return p;
    }

    private Job submitSlow(int sleepMs) {
        return service.submit(new JobService.Submission(ScaleMethod.NAME, model.toString(), calibration.toString(), null,
                Map.of("factor", "0.5", "sleep_ms", Integer.toString(sleepMs)), "slow", "cpu", 0, null), null).job();
    }

    private Job await(String id, String what, java.util.function.Predicate<Job> condition) throws InterruptedException {
        long deadline = System.nanoTime() + WAIT.toNanos();
        while (System.nanoTime() < deadline) {
            Optional<Job> j = store.find(id);
            if (j.isPresent() && condition.test(j.get())) {
                return j.get();
            }
            Thread.sleep(20);
        }
        throw new AssertionError("timed out waiting for job " + id + " to be " + what + "; it is " + store.find(id));
    }

    private static NewJob newJob(String id, String backend) {
        return new NewJob(id, "noop", 0, "/m", null, null, "/o/" + id, "{}", null, backend, null, null, 3);
    }

    @Test
    void fourWorkersRunEachOfTwoHundredJobsExactlyOnce() throws Exception {
        int jobs = 200;
        for (int i = 0; i < jobs; i++) {
            store.insert(newJob("job-" + i, "auto"));
        }
        Map<String, AtomicInteger> runs = new ConcurrentHashMap<>();
        Map<String, String> ranOn = new ConcurrentHashMap<>();
        for (int w = 0; w < 4; w++) {
            String worker = "worker-" + w;
            pool(settings(worker, Duration.ofSeconds(5)), (job, progress, cancelled) -> {
                runs.computeIfAbsent(job.id(), k -> new AtomicInteger()).incrementAndGet();
                ranOn.put(job.id(), worker);
                progress.update("work", 0, 1, 0.5);
                Thread.sleep(2);
                Path out = Path.of(job.output());
                return new JobExecutor.Execution(out, out.resolve("report.json"), JsonMapper.builder().build().createObjectNode(),
                        "cpu", 0);
            }, JobMetrics.NONE, null);
        }
        long deadline = System.nanoTime() + WAIT.toNanos();
        while (store.countByState().get(JobState.SUCCEEDED) < jobs && System.nanoTime() < deadline) {
            Thread.sleep(50);
        }
        assertThat(store.countByState()).containsEntry(JobState.SUCCEEDED, (long) jobs);
        assertThat(runs).hasSize(jobs);
        assertThat(runs.values()).allSatisfy(n -> assertThat(n.get()).isEqualTo(1));
        List<Job> all = store.list(null, null, null, jobs + 1);
        assertThat(all).hasSize(jobs).allSatisfy(j -> {
            assertThat(j.attempt()).isEqualTo(1);
            assertThat(j.leaseOwner()).isNull();
            assertThat(j.result()).isEqualTo(new JobOutput("/o/" + j.id(), "/o/" + j.id() + "/report.json"));
        });
        assertThat(Set.copyOf(ranOn.values())).as("workers that ran jobs").hasSizeGreaterThan(1);
    }

    @Test
    void workersOnlyClaimJobsForBackendsTheyHave() {
        store.insert(newJob("gpu-job", "cuda"));
        store.insert(newJob("cpu-job", "cpu"));
        Optional<Job> claimed = store.claim("cpu-worker", LEASE, List.of("auto", "cpu"), "cpu", j -> {
        });
        assertThat(claimed).map(Job::id).contains("cpu-job");
        assertThat(store.claim("cpu-worker", LEASE, List.of("auto", "cpu"), "cpu", j -> {
        })).isEmpty();
        assertThat(store.claim("gpu-worker", LEASE, List.of("auto", "cuda"), "cuda:0", j -> {
        })).map(Job::id).contains("gpu-job");
    }

    @Test
    void aWorkerThatLostItsLeaseCanChangeNothing() throws Exception {
        store.insert(newJob("j", "auto"));
        Job first = store.claim("a", Duration.ofMillis(100), List.of("auto"), "cpu", j -> {
        }).orElseThrow();
        assertThat(first.attempt()).isEqualTo(1);
        Thread.sleep(250);
        Job second = store.claim("b", LEASE, List.of("auto"), "cpu", j -> {
        }).orElseThrow();
        assertThat(second.attempt()).isEqualTo(2);
        assertThat(second.leaseOwner()).isEqualTo("b");
        assertThat(store.heartbeat("j", "a", LEASE).held()).isFalse();
        assertThat(store.updateProgress("j", "a", new Progress("x", 1, 2, 0.5))).isFalse();
        assertThat(store.finish("j", "a", JobState.SUCCEEDED, null, new JobOutput("/x", "/x/r"), "cpu", null)).isFalse();
        assertThat(store.release("j", "a")).isFalse();
        assertThat(store.heartbeat("j", "b", LEASE).held()).isTrue();
        assertThat(store.find("j").orElseThrow().state()).isEqualTo(JobState.RUNNING);
    }

    @Test
    void anExpiredJobWithNoAttemptsLeftFailsWithLeaseExpired() throws Exception {
        store.insert(new NewJob("once", "noop", 0, "/m", null, null, "/o", "{}", null, "auto", null, null, 1));
        store.claim("ghost", Duration.ofMillis(50), List.of("auto"), "cpu", j -> {
        }).orElseThrow();
        Thread.sleep(150);
        List<Job> closed = new ArrayList<>();
        assertThat(store.claim("next", LEASE, List.of("auto"), "cpu", closed::add)).isEmpty();
        Job job = store.find("once").orElseThrow();
        assertThat(job.state()).isEqualTo(JobState.FAILED);
        assertThat(job.error().code()).isEqualTo(JobErrorCodes.LEASE_EXPIRED);
        assertThat(job.error().message()).contains("ghost").contains("all 1 attempts");
        assertThat(job.finishedAt()).isNotNull();
        assertThat(closed).extracting(Job::id).containsExactly("once");
    }

    @Test
    void aNamedClaimTakesThatJobOnlyAndRefusesOneHeldUnderALiveLease() throws Exception {
        store.insert(newJob("first", "auto"));
        store.insert(newJob("second", "cuda"));
        JobClaim claim = store.claimJob("second", "pod-a", Duration.ofMillis(200), "cuda:0", j -> {
        });
        assertThat(claim).isInstanceOf(JobClaim.Claimed.class);
        Job second = ((JobClaim.Claimed) claim).job();
        assertThat(second.id()).isEqualTo("second");
        assertThat(second.state()).isEqualTo(JobState.RUNNING);
        assertThat(second.leaseOwner()).isEqualTo("pod-a");
        assertThat(second.attempt()).isEqualTo(1);
        assertThat(store.find("first").orElseThrow().state()).as("the other job").isEqualTo(JobState.QUEUED);

        JobClaim refused = store.claimJob("second", "pod-b", LEASE, "cuda:0", j -> {
        });
        assertThat(refused).isInstanceOf(JobClaim.Refused.class);
        JobClaim.Refused r = (JobClaim.Refused) refused;
        assertThat(r.reason()).isEqualTo(JobClaim.Reason.HELD);
        assertThat(r.message()).startsWith("job second is held by pod-a until ").endsWith("(attempt 1 of 3)");
        Thread.sleep(300); // pod-a's lease expires: it died
        JobClaim retry = store.claimJob("second", "pod-b", LEASE, "cuda:0", j -> {
        });
        assertThat(retry).isInstanceOf(JobClaim.Claimed.class);
        assertThat(((JobClaim.Claimed) retry).job().attempt()).isEqualTo(2);
        assertThat(store.heartbeat("second", "pod-a", LEASE).held()).isFalse();
    }

    @Test
    void aNamedClaimOfAMissingOrEndedJobSaysSo() throws Exception {
        JobClaim missing = store.claimJob("nope", "pod", LEASE, "cpu", j -> {
        });
        assertThat(missing).isEqualTo(new JobClaim.Refused(JobClaim.Reason.NOT_FOUND, null, "job nope does not exist"));
        store.insert(newJob("done", "auto"));
        store.claimJob("done", "pod", LEASE, "cpu", j -> {
        });
        store.finish("done", "pod", JobState.SUCCEEDED, null, new JobOutput("/o/done", "/o/done/report.json"), "cpu", null);
        assertThat(store.claimJob("done", "pod-2", LEASE, "cpu", j -> {
        })).isEqualTo(new JobClaim.Refused(JobClaim.Reason.FINISHED, JobState.SUCCEEDED, "job done has already finished (SUCCEEDED)"));
        // an expired attempt whose attempts are used up is closed by the claim, as with claim()
        store.insert(new NewJob("once", "noop", 0, "/m", null, null, "/o/once", "{}", null, "auto", null, null, 1));
        store.claimJob("once", "ghost", Duration.ofMillis(50), "cpu", j -> {
        });
        Thread.sleep(150);
        List<Job> closed = new ArrayList<>();
        JobClaim ended = store.claimJob("once", "pod-3", LEASE, "cpu", closed::add);
        assertThat(ended).isInstanceOf(JobClaim.Refused.class);
        assertThat(((JobClaim.Refused) ended).state()).isEqualTo(JobState.FAILED);
        assertThat(((JobClaim.Refused) ended).message()).startsWith("job once has already finished (FAILED: the worker of attempt 1");
        assertThat(closed).extracting(Job::id).containsExactly("once");
    }

    @Test
    void jobsHandedToKubernetesAreLeftToTheirPods() {
        store.insert(newJob("k8s", "auto"));
        store.insert(newJob("local", "auto"));
        assertThat(store.awaitingDispatch(10)).extracting(Job::id).containsExactly("k8s", "local");
        assertThat(store.markDispatched("k8s", "whittle-k8s")).isTrue();
        assertThat(store.markDispatched("k8s", "whittle-k8s")).as("marked once").isFalse();
        assertThat(store.awaitingDispatch(10)).extracting(Job::id).containsExactly("local");
        Job dispatched = store.find("k8s").orElseThrow();
        assertThat(dispatched.executor()).isEqualTo(ExecutorNames.KUBERNETES);
        assertThat(dispatched.kubernetes()).isEqualTo(new Job.KubernetesStatus("whittle-k8s", null, null, null));

        Job claimed = store.claim("slot", LEASE, List.of("auto"), "cpu", j -> {
        }).orElseThrow();
        assertThat(claimed.id()).as("a local slot takes only the job without a Kubernetes Job").isEqualTo("local");
        assertThat(claimed.executor()).isEqualTo(ExecutorNames.LOCAL);
        assertThat(store.claim("slot-2", LEASE, List.of("auto"), "cpu", j -> {
        })).isEmpty();
        assertThat(store.claimJob("k8s", "whittle-k8s-abcde", LEASE, "cpu", j -> {
        })).isInstanceOf(JobClaim.Claimed.class);
        assertThat(store.dispatched(java.time.Instant.now())).extracting(Job::id).containsExactly("k8s");

        store.updateKubernetesStatus("k8s", "whittle-k8s-abcde", "Running", null);
        assertThat(store.find("k8s").orElseThrow().kubernetes())
                .isEqualTo(new Job.KubernetesStatus("whittle-k8s", "whittle-k8s-abcde", "Running", null));
        assertThat(store.closeAbandoned("k8s", new Job.JobError(JobErrorCodes.WORKER_LOST, "gone")))
                .as("a live lease").isEmpty();
        assertThat(store.failUnfinished("k8s", new Job.JobError(JobErrorCodes.WORKER_FAILED, "Kubernetes gave up"))).isTrue();
        Job failed = store.find("k8s").orElseThrow();
        assertThat(failed.state()).isEqualTo(JobState.FAILED);
        assertThat(failed.error()).isEqualTo(new Job.JobError(JobErrorCodes.WORKER_FAILED, "Kubernetes gave up"));
        assertThat(failed.leaseOwner()).isNull();
        assertThat(store.failUnfinished("k8s", new Job.JobError(JobErrorCodes.WORKER_FAILED, "again"))).isFalse();
        assertThat(store.finish("k8s", "whittle-k8s-abcde", JobState.SUCCEEDED, null, new JobOutput("/x", "/x/r"), "cpu", null))
                .as("the pod's late write").isFalse();
    }

    @Test
    void anAbandonedJobIsCancelledWhenACancelWasRequestedElseFailed() {
        store.insert(newJob("cancelled", "auto"));
        store.insert(newJob("lost", "auto"));
        store.markDispatched("cancelled", "whittle-cancelled");
        store.markDispatched("lost", "whittle-lost");
        store.claimJob("cancelled", "pod", Duration.ofMillis(-1), "cpu", j -> {
        }); // a lease already expired: the pod died
        assertThat(store.requestCancel("cancelled")).isEqualTo(JobStore.CancelOutcome.REQUESTED);
        Job.JobError lost = new Job.JobError(JobErrorCodes.WORKER_LOST, "its Kubernetes Job is gone");
        assertThat(store.closeAbandoned("cancelled", lost)).contains(JobState.CANCELLED);
        assertThat(store.find("cancelled").orElseThrow().error().code()).isEqualTo(JobErrorCodes.CANCELLED);
        assertThat(store.closeAbandoned("lost", lost)).contains(JobState.FAILED);
        assertThat(store.find("lost").orElseThrow().error()).isEqualTo(lost);
        assertThat(store.closeAbandoned("lost", lost)).isEmpty();
    }

    @Test
    void oneProcessAtATimeHoldsTheLeaderLease() throws Exception {
        assertThat(store.tryLead("kubernetes-executor", "api-0", Duration.ofMillis(200))).isTrue();
        assertThat(store.tryLead("kubernetes-executor", "api-1", LEASE)).isFalse();
        assertThat(store.tryLead("kubernetes-executor", "api-0", Duration.ofMillis(200))).as("renewed").isTrue();
        Thread.sleep(300);
        assertThat(store.tryLead("kubernetes-executor", "api-1", LEASE)).as("taken over after expiry").isTrue();
        assertThat(store.tryLead("kubernetes-executor", "api-0", LEASE)).isFalse();
        store.resign("kubernetes-executor", "api-0"); // not the holder: nothing changes
        assertThat(store.tryLead("kubernetes-executor", "api-2", LEASE)).isFalse();
        store.resign("kubernetes-executor", "api-1");
        assertThat(store.tryLead("kubernetes-executor", "api-2", LEASE)).as("free after resigning").isTrue();
        assertThat(store.tryLead("another-role", "api-0", LEASE)).as("a lease name not seeded by the migration").isTrue();
        assertThat(store.tryLead("another-role", "api-1", LEASE)).isFalse();
    }

    @Test
    void aKilledWorkersJobCompletesOnAnotherWorkerWithAttemptTwoAndOneOutput() throws Exception {
        tinyModel(6);
        Job job = submitSlow(400);
        Process doomed = startWorkerProcess("doomed");
        try {
            Job running = await(job.id(), "running at layer >= 1 on the child worker", j -> j.state() == JobState.RUNNING
                    && j.leaseOwner() != null && j.leaseOwner().startsWith("doomed")
                    && j.progress().layer() != null && j.progress().layer() >= 1);
            assertThat(running.attempt()).isEqualTo(1);
        } finally {
            doomed.destroyForcibly();
            doomed.waitFor(30, TimeUnit.SECONDS);
        }
        Path target = Path.of(job.output());
        assertThat(target).doesNotExist();
        assertThat(stagingDirs(target)).as("the killed worker's partial output").isNotEmpty();

        pool(settings("survivor", Duration.ofSeconds(5)), new EngineJobExecutor(roots), JobMetrics.NONE, null);
        Job done = await(job.id(), "finished", j -> j.state().isFinal());
        assertThat(done.state()).isEqualTo(JobState.SUCCEEDED);
        assertThat(done.attempt()).isEqualTo(2);
        assertThat(done.result().output()).isEqualTo(target.toString());
        assertThat(stagingDirs(target)).as("partial outputs left behind").isEmpty();
        try (Stream<Path> s = Files.list(target.getParent())) {
            assertThat(s.map(p -> p.getFileName().toString()).toList()).containsExactly("slow");
        }
        assertDownProjectionsScaled(target, 0.5);
    }

    @Test
    void aWorkerThatStopsHeartbeatingLosesTheJobAndPublishesNothing() throws Exception {
        tinyModel(4);
        Job job = submitSlow(0);
        ScheduledExecutorService frozen = Executors.newSingleThreadScheduledExecutor();
        List<String> staleOutcomes = new java.util.concurrent.CopyOnWriteArrayList<>();
        JobMetrics staleMetrics = new JobMetrics() {
            @Override
            public void jobCompleted(String method, String outcome) {
                staleOutcomes.add(outcome);
            }
        };
        // the stale worker stalls at layer 1 (as in a long GC pause or a network partition) until the test lets it go
        java.util.concurrent.CountDownLatch atLayerOne = new java.util.concurrent.CountDownLatch(1);
        java.util.concurrent.CountDownLatch resume = new java.util.concurrent.CountDownLatch(1);
        EngineJobExecutor engine = new EngineJobExecutor(roots);
        JobExecutor stalling = (j, progress, cancelled) -> engine.execute(j, (stage, layer, layers, fraction) -> {
            progress.update(stage, layer, layers, fraction);
            if (stage.equals("compress") && layer == 1 && atLayerOne.getCount() > 0) {
                atLayerOne.countDown();
                try {
                    resume.await();
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            }
        }, cancelled);
        WorkerPool stale = pool(settings("stale", Duration.ofSeconds(30)), stalling, staleMetrics, frozen);
        assertThat(atLayerOne.await(WAIT.toSeconds(), TimeUnit.SECONDS)).isTrue();
        frozen.shutdownNow(); // its heartbeats stop
        Thread stopper = new Thread(stale::stop); // and it claims nothing new; stop() returns when its job has ended
        stopper.start();

        pool(settings("healthy", Duration.ofSeconds(5)), new EngineJobExecutor(roots), JobMetrics.NONE, null);
        await(job.id(), "claimed again by the healthy worker", j -> j.attempt() == 2);
        resume.countDown(); // the stale worker wakes up with its lease long gone
        Job done = await(job.id(), "finished", j -> j.state().isFinal());
        stopper.join(WAIT.toMillis());
        assertThat(stopper.isAlive()).isFalse();
        assertThat(done.state()).isEqualTo(JobState.SUCCEEDED);
        assertThat(done.attempt()).isEqualTo(2);
        assertThat(staleOutcomes).as("outcomes the stale worker recorded").isEmpty();
        Path target = Path.of(done.output());
        assertThat(stagingDirs(target)).isEmpty();
        assertDownProjectionsScaled(target, 0.5);
    }

    @Test
    void aWorkerThatFindsItsLeaseLostAfterPublishingWithdrawsTheOutput() throws Exception {
        Path out = outputs.resolve("published");
        store.insert(new NewJob("p", "noop", 0, "/m", null, null, out.toString(), "{}", null, "auto", null, null, 3));
        ScheduledExecutorService frozen = Executors.newSingleThreadScheduledExecutor();
        java.util.concurrent.CountDownLatch published = new java.util.concurrent.CountDownLatch(1);
        java.util.concurrent.CountDownLatch stolen = new java.util.concurrent.CountDownLatch(1);
        List<String> outcomes = new java.util.concurrent.CopyOnWriteArrayList<>();
        WorkerPool loser = pool(settings("loser", Duration.ofSeconds(30)), (job, progress, cancelled) -> {
            Files.createDirectories(out);
            Files.writeString(out.resolve("report.json"), "{}");
            published.countDown();
            stolen.await(); // published, then stalled until another worker holds the job
            return new JobExecutor.Execution(out, out.resolve("report.json"), JsonMapper.builder().build().createObjectNode(),
                    "cpu", 0);
        }, new JobMetrics() {
            @Override
            public void jobCompleted(String method, String outcome) {
                outcomes.add(outcome);
            }
        }, frozen);
        assertThat(published.await(WAIT.toSeconds(), TimeUnit.SECONDS)).isTrue();
        frozen.shutdownNow();
        Thread stopper = new Thread(loser::stop);
        stopper.start();
        Optional<Job> thief = Optional.empty();
        long deadline = System.nanoTime() + WAIT.toNanos();
        while (thief.isEmpty() && System.nanoTime() < deadline) {
            Thread.sleep(50);
            thief = store.claim("thief", Duration.ofMinutes(5), List.of("auto"), "cpu", j -> {
            });
        }
        assertThat(thief).as("the job, claimed again after the lease expired").isPresent();
        stolen.countDown();
        stopper.join(WAIT.toMillis());
        assertThat(stopper.isAlive()).isFalse();
        assertThat(out).as("the unrecorded output").doesNotExist();
        assertThat(stagingDirs(out)).isEmpty();
        assertThat(outcomes).isEmpty();
        Job job = store.find("p").orElseThrow();
        assertThat(job.state()).isEqualTo(JobState.RUNNING);
        assertThat(job.leaseOwner()).isEqualTo("thief");
        assertThat(job.attempt()).isEqualTo(2);
    }

    @Test
    void aStoppingWorkerReleasesItsJobToTheQueueWithoutCountingTheAttempt() throws Exception {
        tinyModel(6);
        Job job = submitSlow(300);
        WorkerPool worker = pool(settings("leaving", Duration.ofMillis(100)), new EngineJobExecutor(roots), JobMetrics.NONE, null);
        await(job.id(), "running", j -> j.state() == JobState.RUNNING && j.progress().layer() != null);
        worker.stop();
        Job released = store.find(job.id()).orElseThrow();
        assertThat(released.state()).isEqualTo(JobState.QUEUED);
        assertThat(released.attempt()).isZero();
        assertThat(released.leaseOwner()).isNull();
        Path target = Path.of(released.output());
        assertThat(target).doesNotExist();
        assertThat(stagingDirs(target)).isEmpty();
    }

    private static List<Path> stagingDirs(Path target) throws Exception {
        if (!Files.isDirectory(target.getParent())) {
            return List.of();
        }
        try (Stream<Path> s = Files.list(target.getParent())) {
            return s.filter(p -> p.getFileName().toString().startsWith("." + target.getFileName() + ".whittle-")).toList();
        }
    }

    /** Every down_proj of the output is exactly factor times the input's (0.5 is exact in bf16); the rest is unchanged. */
    void assertDownProjectionsScaled(Path output, double factor) {
        try (Checkpoint in = Checkpoint.open(model); Checkpoint out = Checkpoint.open(output);
             HostAllocator alloc = HostAllocator.root().newChild("check", Long.MAX_VALUE)) {
            assertThat(out.tensorNames()).isEqualTo(in.tensorNames());
            io.whittle.model.ModelSpec spec = io.whittle.model.ModelSpecs.load(model);
            Set<String> downs = new java.util.HashSet<>();
            for (int l = 0; l < spec.numLayers(); l++) {
                downs.addAll(ScaleMethod.downProjections(spec.layer(l)));
            }
            int scaled = 0;
            for (String name : in.tensorNames()) {
                try (FloatTensor a = in.readFloat(name, alloc); FloatTensor b = out.readFloat(name, alloc)) {
                    boolean down = downs.contains(name);
                    float[] x = a.toArray();
                    float[] y = b.toArray();
                    for (int i = 0; i < x.length; i++) {
                        float want = down ? (float) (x[i] * factor) : x[i];
                        assertThat(y[i]).as("%s[%d]", name, i).isEqualTo(want);
                    }
                    scaled += down ? 1 : 0;
                }
            }
            assertThat(scaled).isEqualTo(downs.size()).isPositive();
        }
    }

    /** Starts a worker in a separate JVM (killed with SIGKILL by the test) against this test's database. */
    private Process startWorkerProcess(String id) throws Exception {
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        List<String> cmd = new ArrayList<>(List.of(java, "-Xmx512m", "-cp", System.getProperty("java.class.path")));
        for (String prop : List.of("org.bytedeco.javacpp.cachedir", "java.io.tmpdir", "ai.djl.offline")) {
            if (System.getProperty(prop) != null) {
                cmd.add("-D" + prop + "=" + System.getProperty(prop));
            }
        }
        cmd.addAll(List.of(WorkerProcess.class.getName(), db.url(), db.user(), db.password(), models.toString(),
                outputs.toString(), id, Long.toString(LEASE.toMillis()), Long.toString(HEARTBEAT.toMillis())));
        File log = dir.resolve(id + ".log").toFile();
        return new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log).start();
    }
}
