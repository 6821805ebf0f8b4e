package io.whittle.app;

import io.micrometer.core.instrument.MeterRegistry;
import io.whittle.compute.BackendProvider;
import io.whittle.compute.Backends;
import io.whittle.compute.DeviceInfo;
import io.whittle.jobs.EngineJobExecutor;
import io.whittle.jobs.JobPlacement;
import io.whittle.jobs.JobService;
import io.whittle.jobs.JobSignals;
import io.whittle.jobs.JobStore;
import io.whittle.jobs.SingleJobWorker;
import io.whittle.jobs.StorageRoots;
import io.whittle.jobs.WorkerPool;
import io.whittle.jobs.WorkerSettings;
import io.whittle.jobs.kubernetes.KubernetesExecutor;
import io.whittle.metrics.MicrometerJobMetrics;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Clock;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import javax.sql.DataSource;
import org.springframework.beans.factory.ObjectProvider;
import org.springframework.boot.context.properties.EnableConfigurationProperties;
import org.springframework.boot.sql.init.dependency.DependsOnDatabaseInitialization;
import org.springframework.context.SmartLifecycle;
import org.springframework.context.annotation.Bean;
import org.springframework.context.annotation.Conditional;
import org.springframework.context.annotation.Configuration;

/**
 * Wires the job store, storage roots, metrics and the job service, and what runs the jobs: local worker slots (roles
 * {@code worker} and {@code all} with {@code whittle.executor=local}), the Kubernetes executor (API processes with
 * {@code whittle.executor=kubernetes}, see {@link KubernetesExecutorConfiguration}), or one job
 * ({@code whittle worker --job <id>}).
 */
@Configuration(proxyBeanMethods = false)
@EnableConfigurationProperties(WhittleProperties.class)
public class JobsConfiguration {

    @Bean
    Clock whittleClock() {
        return Clock.systemUTC();
    }

    @Bean
    @DependsOnDatabaseInitialization
    JobStore jobStore(DataSource dataSource, Clock whittleClock) {
        return new JobStore(dataSource, whittleClock);
    }

    @Bean
    StorageRoots storageRoots(WhittleProperties props) {
        WhittleProperties.Storage s = props.getStorage();
        Path dataDir = s.getDataDir().toAbsolutePath().normalize();
        List<Path> modelRoots = new ArrayList<>(s.getModelRoots());
        if (modelRoots.isEmpty()) {
            modelRoots.add(createDirectories(dataDir.resolve("models")));
        }
        Path outputRoot = s.getOutputRoot() != null ? s.getOutputRoot() : dataDir.resolve("outputs");
        return new StorageRoots(modelRoots, outputRoot);
    }

    private static Path createDirectories(Path p) {
        try {
            return Files.createDirectories(p);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot create " + p + ": " + e.getMessage(), e);
        }
    }

    @Bean
    JobSignals jobSignals() {
        return new JobSignals();
    }

    @Bean(destroyMethod = "close")
    MicrometerJobMetrics jobMetrics(MeterRegistry registry, JobStore store) {
        MicrometerJobMetrics m = new MicrometerJobMetrics(registry);
        m.bindActiveJobs(() -> {
            Map<String, Long> out = new LinkedHashMap<>();
            store.countByState().forEach((k, v) -> out.put(k.name().toLowerCase(Locale.ROOT), v));
            return out;
        });
        m.bindDevices();
        m.installKernelTimings();
        return m;
    }

    /** The job service; new jobs run on the Kubernetes executor when this process runs it, else on local worker slots. */
    @Bean
    JobService jobService(JobStore store, StorageRoots roots, MicrometerJobMetrics metrics, JobSignals signals,
                          WhittleProperties props, ObjectProvider<KubernetesExecutor> kubernetes) {
        if (props.getExecutor().isKubernetes() && props.getRole().equals("worker") && !props.getWorker().runsSingleJob()) {
            throw new IllegalStateException("whittle.executor=kubernetes runs every job in its own Kubernetes Job created "
                    + "by the API; a process with whittle.role=worker has nothing to do (run API processes only, or set "
                    + "whittle.executor=local)");
        }
        KubernetesExecutor k = kubernetes.getIfAvailable();
        JobPlacement placement = k != null ? k : JobPlacement.LOCAL;
        return new JobService(store, roots, metrics, signals, props.getWorker().getMaxAttempts(), placement);
    }

    @Bean
    @Conditional(ProcessConditions.WorkerSlots.class)
    WorkerLifecycle workerLifecycle(JobStore store, StorageRoots roots, MicrometerJobMetrics metrics, JobSignals signals,
                                    WhittleProperties props) {
        return new WorkerLifecycle(new WorkerPool(store, new EngineJobExecutor(roots), workerSettings(props), metrics, signals));
    }

    /** Slots, accepted backends and the default device from what this machine's backends can do. */
    static WorkerSettings workerSettings(WhittleProperties props) {
        WhittleProperties.Worker w = props.getWorker();
        List<String> backends = new ArrayList<>();
        String device = null;
        int gpus = 0;
        for (BackendProvider p : Backends.providers()) {
            DeviceInfo d = p.probe();
            if (!d.usable()) {
                continue;
            }
            backends.add(p.name());
            if (device == null) {
                device = p.name(); // the one "auto" picks: usable, lowest rank
            }
            if (!"cpu".equals(d.kind())) {
                gpus++;
            }
        }
        if (backends.isEmpty()) {
            throw new IllegalStateException("this worker has no usable compute backend: " + Backends.devices());
        }
        backends.add("auto");
        int slots = w.getSlots() > 0 ? w.getSlots() : gpus > 0 ? gpus : w.getCpuSlots();
        String id = w.getId() == null || w.getId().isBlank() ? WorkerPool.defaultWorkerId() : w.getId();
        return new WorkerSettings(id, slots, backends, device, w.getLease(), w.getHeartbeat(), w.getPollInterval(),
                w.getProgressInterval(), w.getShutdownGrace(), w.getReleaseTimeout());
    }

    /** The worker of {@code whittle worker --job <id>}: runs that job (the command calls it) and nothing else. */
    @Bean
    @Conditional(ProcessConditions.SingleJob.class)
    SingleJobWorker singleJobWorker(JobStore store, StorageRoots roots, MicrometerJobMetrics metrics, WhittleProperties props) {
        return new SingleJobWorker(store, new EngineJobExecutor(roots), workerSettings(props), metrics);
    }

    /** On shutdown (SIGTERM) the single job stops at its next layer boundary and is given back before the database closes. */
    @Bean
    @Conditional(ProcessConditions.SingleJob.class)
    SmartLifecycle singleJobLifecycle(SingleJobWorker worker) {
        return new SmartLifecycle() {
            private volatile boolean running;

            @Override
            public void start() {
                running = true;
            }

            @Override
            public void stop() {
                running = false;
                worker.stop();
            }

            @Override
            public boolean isRunning() {
                return running;
            }

            @Override
            public int getPhase() {
                return Integer.MAX_VALUE;
            }
        };
    }

    /** Starts the workers with the application and stops them (finish or release) before the database closes. */
    public static final class WorkerLifecycle implements SmartLifecycle {

        private final WorkerPool pool;

        WorkerLifecycle(WorkerPool pool) {
            this.pool = pool;
        }

        public WorkerPool pool() {
            return pool;
        }

        @Override
        public void start() {
            pool.start();
        }

        @Override
        public void stop() {
            pool.stop();
        }

        @Override
        public boolean isRunning() {
            return pool.isRunning();
        }

        /** Stop first among lifecycle beans, before the web server goes away. */
        @Override
        public int getPhase() {
            return Integer.MAX_VALUE;
        }
    }
}
