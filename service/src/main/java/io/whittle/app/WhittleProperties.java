package io.whittle.app;

import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import org.springframework.boot.context.properties.ConfigurationProperties;
import org.springframework.util.unit.DataSize;

/**
 * The {@code whittle.*} configuration of the service. Every setting has a default that works on one machine with
 * no set-up: an H2 database, models and outputs under {@code whittle.storage.data-dir}.
 */
@ConfigurationProperties("whittle")
public class WhittleProperties {

    /** What this process does: {@code api} (REST only), {@code worker} (runs jobs only) or {@code all}. */
    private String role = "all";
    private final Storage storage = new Storage();
    private final Worker worker = new Worker();
    private final Security security = new Security();
    private final Api api = new Api();

    public String getRole() {
        return role;
    }

    public void setRole(String role) {
        String r = role == null ? "" : role.trim().toLowerCase();
        if (!r.equals("api") && !r.equals("worker") && !r.equals("all")) {
            throw new IllegalArgumentException("whittle.role must be api, worker or all (got '" + role + "')");
        }
        this.role = r;
    }

    public boolean runsWorkers() {
        return !role.equals("api");
    }

    public boolean servesApi() {
        return !role.equals("worker");
    }

    public Storage getStorage() {
        return storage;
    }

    public Worker getWorker() {
        return worker;
    }

    public Security getSecurity() {
        return security;
    }

    public Api getApi() {
        return api;
    }

    /** Where the embedded database, models and outputs live. */
    public static class Storage {
        /** Home of the embedded H2 database and the default model and output roots. */
        private Path dataDir = Path.of("whittle-data");
        /** Directories models, calibration and evaluation files may be read from (default: {@code <data-dir>/models}). */
        private List<Path> modelRoots = new ArrayList<>();
        /** Directory outputs are written under (default: {@code <data-dir>/outputs}). */
        private Path outputRoot;

        public Path getDataDir() {
            return dataDir;
        }

        public void setDataDir(Path dataDir) {
            this.dataDir = dataDir;
        }

        public List<Path> getModelRoots() {
            return modelRoots;
        }

        public void setModelRoots(List<Path> modelRoots) {
            this.modelRoots = modelRoots;
        }

        public Path getOutputRoot() {
            return outputRoot;
        }

        public void setOutputRoot(Path outputRoot) {
            this.outputRoot = outputRoot;
        }
    }

    /** How this process claims and runs jobs (roles {@code worker} and {@code all}). */
    public static class Worker {
        /** Jobs run at once; 0 = one per usable GPU, or {@code cpu-slots} without one. */
        private int slots = 0;
        /** Jobs run at once on a machine without a usable GPU (when {@code slots} is 0). */
        private int cpuSlots = 1;
        /** How long a claim stays valid without a heartbeat. */
        private Duration lease = Duration.ofSeconds(60);
        /** How often a running job's lease is renewed. */
        private Duration heartbeat = Duration.ofSeconds(15);
        /** How long an idle worker waits before looking for work again. */
        private Duration pollInterval = Duration.ofSeconds(1);
        /** Least time between two progress writes of one job. */
        private Duration progressInterval = Duration.ofMillis(250);
        /** How long a stopping worker lets running jobs finish before giving them back to the queue. */
        private Duration shutdownGrace = Duration.ofSeconds(30);
        /** How long it then waits for them to stop at a layer boundary. */
        private Duration releaseTimeout = Duration.ofSeconds(10);
        /** Attempts per job before a job whose workers keep dying fails. */
        private int maxAttempts = 3;
        /** This worker's name in leases (default: host, pid and a random suffix). */
        private String id;

        public int getSlots() {
            return slots;
        }

        public void setSlots(int slots) {
            this.slots = slots;
        }

        public int getCpuSlots() {
            return cpuSlots;
        }

        public void setCpuSlots(int cpuSlots) {
            this.cpuSlots = cpuSlots;
        }

        public Duration getLease() {
            return lease;
        }

        public void setLease(Duration lease) {
            this.lease = lease;
        }

        public Duration getHeartbeat() {
            return heartbeat;
        }

        public void setHeartbeat(Duration heartbeat) {
            this.heartbeat = heartbeat;
        }

        public Duration getPollInterval() {
            return pollInterval;
        }

        public void setPollInterval(Duration pollInterval) {
            this.pollInterval = pollInterval;
        }

        public Duration getProgressInterval() {
            return progressInterval;
        }

        public void setProgressInterval(Duration progressInterval) {
            this.progressInterval = progressInterval;
        }

        public Duration getShutdownGrace() {
            return shutdownGrace;
        }

        public void setShutdownGrace(Duration shutdownGrace) {
            this.shutdownGrace = shutdownGrace;
        }

        public Duration getReleaseTimeout() {
            return releaseTimeout;
        }

        public void setReleaseTimeout(Duration releaseTimeout) {
            this.releaseTimeout = releaseTimeout;
        }

        public int getMaxAttempts() {
            return maxAttempts;
        }

        public void setMaxAttempts(int maxAttempts) {
            this.maxAttempts = maxAttempts;
        }

        public String getId() {
            return id;
        }

        public void setId(String id) {
            this.id = id;
        }
    }

    /** API keys. With none configured the API is open (a single-user machine). */
    public static class Security {
        /** Accepted keys, in plain text (prefer {@code api-key-hashes-file} in a cluster). */
        private List<String> apiKeys = new ArrayList<>();
        /** A file of accepted keys' SHA-256 hashes in hex, one per line (e.g. a mounted Kubernetes Secret). */
        private Path apiKeyHashesFile;
        /** Whether {@code /actuator/prometheus} needs a key too (when keys are configured). */
        private boolean protectMetrics = false;

        public List<String> getApiKeys() {
            return apiKeys;
        }

        public void setApiKeys(List<String> apiKeys) {
            this.apiKeys = apiKeys;
        }

        public Path getApiKeyHashesFile() {
            return apiKeyHashesFile;
        }

        public void setApiKeyHashesFile(Path apiKeyHashesFile) {
            this.apiKeyHashesFile = apiKeyHashesFile;
        }

        public boolean isProtectMetrics() {
            return protectMetrics;
        }

        public void setProtectMetrics(boolean protectMetrics) {
            this.protectMetrics = protectMetrics;
        }
    }

    /** REST API limits. */
    public static class Api {
        /** Largest accepted request body. */
        private DataSize maxBodySize = DataSize.ofKilobytes(64);
        /** How often the event streams look for changes of their jobs. */
        private Duration eventsPollInterval = Duration.ofMillis(250);
        /** How long an event stream stays open at most (clients reconnect). */
        private Duration eventsTimeout = Duration.ofHours(1);
        /** Largest page of {@code GET /api/v1/jobs}. */
        private int maxPageSize = 200;

        public DataSize getMaxBodySize() {
            return maxBodySize;
        }

        public void setMaxBodySize(DataSize maxBodySize) {
            this.maxBodySize = maxBodySize;
        }

        public Duration getEventsPollInterval() {
            return eventsPollInterval;
        }

        public void setEventsPollInterval(Duration eventsPollInterval) {
            this.eventsPollInterval = eventsPollInterval;
        }

        public Duration getEventsTimeout() {
            return eventsTimeout;
        }

        public void setEventsTimeout(Duration eventsTimeout) {
            this.eventsTimeout = eventsTimeout;
        }

        public int getMaxPageSize() {
            return maxPageSize;
        }

        public void setMaxPageSize(int maxPageSize) {
            this.maxPageSize = maxPageSize;
        }
    }
}
