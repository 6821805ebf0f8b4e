package io.whittle.cli;

import static org.assertj.core.api.Assertions.assertThat;

import com.zaxxer.hikari.HikariDataSource;
import io.whittle.jobs.Job;
import io.whittle.jobs.JobClaim;
import io.whittle.jobs.JobService;
import io.whittle.jobs.JobSignals;
import io.whittle.jobs.JobState;
import io.whittle.jobs.JobStore;
import io.whittle.jobs.StorageRoots;
import io.whittle.metrics.JobMetrics;
import io.whittle.testing.ScaleMethod;
import io.whittle.testing.TestDatabases;
import io.whittle.testing.TestModels;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Clock;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code whittle worker --job <id>} end to end against the embedded store (the H2 database of {@code --data-dir}, the
 * same one this test writes): it runs its job and no other, refuses a job another pod holds (and renews, or holds
 * for longer than a lease), and exits non-zero
 * with one clear line when the job does not exist.
 */
class WorkerCommandTest {

    @TempDir
    Path data;
    TestDatabases.Database db;
    HikariDataSource dataSource;
    JobStore store;
    JobService service;
    Path model;
    Path calibration;

    @BeforeEach
    void setUp() throws Exception {
        db = TestDatabases.h2(data, false); // the service's default database under --data-dir
        db.migrate();
        dataSource = db.dataSource(2);
        store = new JobStore(dataSource, Clock.systemUTC());
        Path models = Files.createDirectories(data.resolve("models"));
        model = models.resolve("tiny");
        TestModels.tinyMoe(model, 2, 42);
        calibration = TestModels.tokens(models.resolve("calibration.json"), 2, 16, 128, 7);
        service = new JobService(store, new StorageRoots(List.of(models), data.resolve("outputs")), JobMetrics.NONE,
                new JobSignals(), 3);
    }

    @AfterEach
    void tearDown() {
        dataSource.close();
    }

    CliRun worker(String... extra) {
        List<String> args = new ArrayList<>(List.of("worker", "--data-dir", data.toString(), "--whittle.worker.lease=2s",
                "--whittle.worker.heartbeat=300ms", "--whittle.worker.progress-interval=50ms"));
        args.addAll(List.of(extra));
        return CliRun.of(args.toArray(String[]::new));
    }

    Job submit(String output) {
        return service.submit(new JobService.Submission(ScaleMethod.NAME, model.toString(), calibration.toString(), null,
                Map.of("factor", "0.5"), output, "cpu", 0, null), null).job();
    }

    @Test
    void runsItsJobAndNoOtherThenExitsZero() throws Exception {
        Job other = submit("other");
        Job mine = submit("mine");
        Path terminationLog = Files.createFile(data.resolve("termination-log"));
        CliRun run = worker("--job", mine.id(), "--termination-log", terminationLog.toString(),
                "--whittle.worker.id=whittle-" + mine.id() + "-x7k2p");

        assertThat(run.code()).as(run.out() + run.err()).isZero();
        Job done = store.find(mine.id()).orElseThrow();
        assertThat(done.state()).isEqualTo(JobState.SUCCEEDED);
        assertThat(done.attempt()).isEqualTo(1);
        assertThat(done.leaseOwner()).isNull();
        assertThat(done.device()).isEqualTo("cpu");
        assertThat(done.progress().fraction()).isEqualTo(1.0);
        Path output = Path.of(done.result().output());
        assertThat(output).isEqualTo(data.resolve("outputs/mine").toAbsolutePath());
        assertThat(output.resolve("config.json")).isRegularFile();
        assertThat(output.resolve("report.json")).isRegularFile();
        String message = "job " + mine.id() + " succeeded: " + output;
        assertThat(run.out()).isEqualTo(message + System.lineSeparator());
        assertThat(Files.readString(terminationLog)).isEqualTo(message);

        Job untouched = store.find(other.id()).orElseThrow();
        assertThat(untouched.state()).as("the other job").isEqualTo(JobState.QUEUED);
        assertThat(untouched.attempt()).isZero();
        assertThat(data.resolve("outputs/other")).doesNotExist();
    }

    @Test
    void refusesAJobAnotherPodHolds() {
        Job job = submit(null);
        assertThat(store.claimJob(job.id(), "whittle-" + job.id() + "-first", Duration.ofMinutes(5), "cpu", j -> {
        })).isInstanceOf(JobClaim.Claimed.class);

        CliRun run = worker("--job", job.id()); // waits one lease period (2 s) for the holder's lease to run out
        assertThat(run.code()).as("another pod may take it once the lease expires").isEqualTo(1);
        assertThat(run.err()).startsWith("error: job " + job.id() + " is held by whittle-" + job.id() + "-first until ")
                .endsWith(" (attempt 1 of 3); not taken" + System.lineSeparator());
        assertThat(run.out()).isEmpty();
        Job still = store.find(job.id()).orElseThrow();
        assertThat(still.state()).isEqualTo(JobState.RUNNING);
        assertThat(still.leaseOwner()).isEqualTo("whittle-" + job.id() + "-first");
        assertThat(still.attempt()).isEqualTo(1);
    }

    @Test
    void aJobThatDoesNotExistIsAnErrorWithOneLine() {
        CliRun run = worker("--job", "2aed9c4c-d212-4de9-be0d-8572f7777687");
        assertThat(run.code()).isEqualTo(3);
        assertThat(run.err()).isEqualTo("error: job 2aed9c4c-d212-4de9-be0d-8572f7777687 does not exist"
                + System.lineSeparator());
        assertThat(run.out()).isEmpty();
        CliRun usage = worker("--job", "x", "--whittle.role=all");
        assertThat(usage.code()).isEqualTo(2);
        assertThat(usage.err()).isEqualTo("error: '--whittle.role=all': the worker command sets whittle.role itself"
                + System.lineSeparator());
    }
}
