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
