package io.whittle.app;

import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
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
    private final Executor executor = new Executor();

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

    public Executor getExecutor() {
        return executor;
    }

    /** Whether this process runs the Kubernetes executor's dispatcher and reconciler (an API process in that mode). */
    public boolean runsKubernetesExecutor() {
        return executor.isKubernetes() && servesApi() && !worker.runsSingleJob();
    }

    /** Whether this process runs local worker slots. */
    public boolean runsWorkerSlots() {
        return runsWorkers() && !executor.isKubernetes() && !worker.runsSingleJob();
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
        /** Set by {@code whittle worker --job <id>}: the process runs this one job and exits (no slots, no API). */
        private String job;

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

        public String getJob() {
            return job;
        }

        public void setJob(String job) {
            this.job = job;
        }

        public boolean runsSingleJob() {
            return job != null && !job.isBlank();
        }
    }

    /**
     * Where jobs run: {@code local} (the worker slots of processes with role {@code worker} or {@code all}) or
     * {@code kubernetes} (one Kubernetes Job per compression job, created by the API). {@code whittle.executor} is
     * accepted as a short form of {@code whittle.executor.mode}.
     */
    public static class Executor {
        /** {@code local} or {@code kubernetes}. */
        private String mode = "local";
        private final Kubernetes kubernetes = new Kubernetes();

        public String getMode() {
            return mode;
        }

        public void setMode(String mode) {
            String m = mode == null ? "" : mode.trim().toLowerCase();
            if (!m.equals("local") && !m.equals("kubernetes")) {
                throw new IllegalArgumentException("whittle.executor must be local or kubernetes (got '" + mode + "')");
            }
            this.mode = m;
        }

        public boolean isKubernetes() {
            return mode.equals("kubernetes");
        }

        public Kubernetes getKubernetes() {
            return kubernetes;
        }
    }

    /** The Kubernetes executor: how each job's batch/v1 Job is built and watched (see SERVICE.md). */
    public static class Kubernetes {
        /** Namespace of the Jobs (default: the API pod's own, from its service account, or the kubeconfig's). */
        private String namespace;
        /** The worker pod template (YAML PodTemplateSpec, e.g. a mounted ConfigMap the chart renders). */
        private Path podTemplateFile;
        /** The Whittle image of job pods (overrides the template's). */
        private String image;
        /** Image pull policy of job pods (overrides the template's). */
        private String imagePullPolicy;
        /** Service account of job pods (overrides the template's). */
        private String serviceAccountName;
        /** The template's container that runs Whittle (or its only container). */
        private String containerName = "whittle";
        /** The container command (default: the image's entrypoint, {@code whittle}); args are {@code worker --job <id>}. */
        private List<String> command = new ArrayList<>();
        /** GPU resource a job's pod requests unless the job names another. */
        private String gpuResource = "nvidia.com/gpu";
        /** GPUs per job unless the job asks otherwise (jobs with backend {@code cpu} get none). */
        private int gpuCount = 1;
        /** Most GPUs a job may ask for. */
        private int maxGpus = 8;
        /** GPU resources a job may name: exact names or patterns with {@code *}. */
        private List<String> allowedGpuResources = new ArrayList<>(List.of("nvidia.com/gpu", "nvidia.com/mig-*"));
        /** Added to the template's node selector. */
        private Map<String, String> nodeSelector = new LinkedHashMap<>();
        /** Added to the labels of Jobs and their pods. */
        private Map<String, String> labels = new LinkedHashMap<>();
        /** Added to the annotations of Jobs and their pods. */
        private Map<String, String> annotations = new LinkedHashMap<>();
        /** Pod retries after a failure ({@code backoffLimit}). */
        private int backoffLimit = 2;
        /** Longest run of one Job ({@code activeDeadlineSeconds}); 0 for none. */
        private Duration activeDeadline = Duration.ofHours(24);
        /** When finished Jobs are deleted ({@code ttlSecondsAfterFinished}); 0 for never. */
        private Duration ttlAfterFinished = Duration.ofHours(1);
        /** Kueue LocalQueue ({@code kueue.x-k8s.io/queue-name}); none by default. */
        private String queueName;
        /** PriorityClass of job pods; none by default. */
        private String priorityClassName;
        /** Kueue WorkloadPriorityClass ({@code kueue.x-k8s.io/priority-class}); none by default. */
        private String workloadPriorityClass;
        /** Job names are this prefix and the job id. */
        private String jobNamePrefix = "whittle-";
        /** How often the leader dispatches and reconciles (submissions wake it at once). */
        private Duration pollInterval = Duration.ofSeconds(5);
        /** How long the leader's claim lasts without renewal. */
        private Duration leaderLease = Duration.ofSeconds(30);
        /** How long a job's pod may stay Unschedulable before the job fails. */
        private Duration unschedulableTimeout = Duration.ofMinutes(15);
        /** How long a job's pod may fail to start (ImagePullBackOff, CreateContainerConfigError...) before the job fails. */
        private Duration startTimeout = Duration.ofMinutes(5);
        /** How long after a job ended the executor still records its pod's final phase. */
        private Duration finishedWindow = Duration.ofMinutes(5);
        /** The Kubernetes API server (default: in-cluster configuration, or the kubeconfig). */
        private String apiServerUrl;

        public String getNamespace() {
            return namespace;
        }

        public void setNamespace(String namespace) {
            this.namespace = namespace;
        }

        public Path getPodTemplateFile() {
            return podTemplateFile;
        }

        public void setPodTemplateFile(Path podTemplateFile) {
            this.podTemplateFile = podTemplateFile;
        }

        public String getImage() {
            return image;
        }

        public void setImage(String image) {
            this.image = image;
        }

        public String getImagePullPolicy() {
            return imagePullPolicy;
        }

        public void setImagePullPolicy(String imagePullPolicy) {
            this.imagePullPolicy = imagePullPolicy;
        }

        public String getServiceAccountName() {
            return serviceAccountName;
        }

        public void setServiceAccountName(String serviceAccountName) {
            this.serviceAccountName = serviceAccountName;
        }

        public String getContainerName() {
            return containerName;
        }

        public void setContainerName(String containerName) {
            this.containerName = containerName;
        }

        public List<String> getCommand() {
            return command;
        }

        public void setCommand(List<String> command) {
            this.command = command;
        }

        public String getGpuResource() {
            return gpuResource;
        }

        public void setGpuResource(String gpuResource) {
            this.gpuResource = gpuResource;
        }

        public int getGpuCount() {
            return gpuCount;
        }

        public void setGpuCount(int gpuCount) {
            this.gpuCount = gpuCount;
        }

        public int getMaxGpus() {
            return maxGpus;
        }

        public void setMaxGpus(int maxGpus) {
            this.maxGpus = maxGpus;
        }

        public List<String> getAllowedGpuResources() {
            return allowedGpuResources;
        }

        public void setAllowedGpuResources(List<String> allowedGpuResources) {
            this.allowedGpuResources = allowedGpuResources;
        }

        public Map<String, String> getNodeSelector() {
            return nodeSelector;
        }

        public void setNodeSelector(Map<String, String> nodeSelector) {
            this.nodeSelector = nodeSelector;
        }

        public Map<String, String> getLabels() {
            return labels;
        }

        public void setLabels(Map<String, String> labels) {
            this.labels = labels;
        }

        public Map<String, String> getAnnotations() {
            return annotations;
        }

        public void setAnnotations(Map<String, String> annotations) {
            this.annotations = annotations;
        }

        public int getBackoffLimit() {
            return backoffLimit;
        }

        public void setBackoffLimit(int backoffLimit) {
            this.backoffLimit = backoffLimit;
        }

        public Duration getActiveDeadline() {
            return activeDeadline;
        }

        public void setActiveDeadline(Duration activeDeadline) {
            this.activeDeadline = activeDeadline;
        }

        public Duration getTtlAfterFinished() {
            return ttlAfterFinished;
        }

        public void setTtlAfterFinished(Duration ttlAfterFinished) {
            this.ttlAfterFinished = ttlAfterFinished;
        }

        public String getQueueName() {
            return queueName;
        }

        public void setQueueName(String queueName) {
            this.queueName = queueName;
        }

        public String getPriorityClassName() {
            return priorityClassName;
        }

        public void setPriorityClassName(String priorityClassName) {
            this.priorityClassName = priorityClassName;
        }

        public String getWorkloadPriorityClass() {
            return workloadPriorityClass;
        }

        public void setWorkloadPriorityClass(String workloadPriorityClass) {
            this.workloadPriorityClass = workloadPriorityClass;
        }

        public String getJobNamePrefix() {
            return jobNamePrefix;
        }

        public void setJobNamePrefix(String jobNamePrefix) {
            this.jobNamePrefix = jobNamePrefix;
        }

        public Duration getPollInterval() {
            return pollInterval;
        }

        public void setPollInterval(Duration pollInterval) {
            this.pollInterval = pollInterval;
        }

        public Duration getLeaderLease() {
            return leaderLease;
        }

        public void setLeaderLease(Duration leaderLease) {
            this.leaderLease = leaderLease;
        }

        public Duration getUnschedulableTimeout() {
            return unschedulableTimeout;
        }

        public void setUnschedulableTimeout(Duration unschedulableTimeout) {
            this.unschedulableTimeout = unschedulableTimeout;
        }

        public Duration getStartTimeout() {
            return startTimeout;
        }

        public void setStartTimeout(Duration startTimeout) {
            this.startTimeout = startTimeout;
        }

        public Duration getFinishedWindow() {
            return finishedWindow;
        }

        public void setFinishedWindow(Duration finishedWindow) {
            this.finishedWindow = finishedWindow;
        }

        public String getApiServerUrl() {
            return apiServerUrl;
        }

        public void setApiServerUrl(String apiServerUrl) {
            this.apiServerUrl = apiServerUrl;
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
