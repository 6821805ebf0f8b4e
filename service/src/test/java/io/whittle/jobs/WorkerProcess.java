package io.whittle.jobs;

import com.zaxxer.hikari.HikariConfig;
import com.zaxxer.hikari.HikariDataSource;
import io.whittle.metrics.JobMetrics;
import java.nio.file.Path;
import java.time.Clock;
import java.time.Duration;
import java.util.List;

/**
 * A worker in its own JVM for the killed-worker test: {@code url user password modelRoot outputRoot id leaseMs
 * heartbeatMs}. Runs until killed.
 */
public final class WorkerProcess {

    private WorkerProcess() {
    }

    public static void main(String[] args) throws Exception {
        HikariConfig c = new HikariConfig();
        c.setJdbcUrl(args[0]);
        c.setUsername(args[1]);
        c.setPassword(args[2]);
        c.setMaximumPoolSize(4);
        HikariDataSource ds = new HikariDataSource(c);
        JobStore store = new JobStore(ds, Clock.systemUTC());
        StorageRoots roots = new StorageRoots(List.of(Path.of(args[3])), Path.of(args[4]));
        WorkerSettings settings = new WorkerSettings(args[5], 1, List.of("auto", "cpu"), "cpu",
                Duration.ofMillis(Long.parseLong(args[6])), Duration.ofMillis(Long.parseLong(args[7])), Duration.ofMillis(20),
                Duration.ofMillis(50), Duration.ofSeconds(30), Duration.ofSeconds(10));
        new WorkerPool(store, new EngineJobExecutor(roots), settings, JobMetrics.NONE, new JobSignals()).start();
        Thread.currentThread().join();
    }
}
