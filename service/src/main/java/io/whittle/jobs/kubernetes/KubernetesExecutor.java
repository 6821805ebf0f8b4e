package io.whittle.jobs.kubernetes;

import io.fabric8.kubernetes.api.model.DeletionPropagation;
import io.fabric8.kubernetes.api.model.Pod;
import io.fabric8.kubernetes.api.model.batch.v1.Job;
import io.fabric8.kubernetes.client.KubernetesClient;
import io.fabric8.kubernetes.client.KubernetesClientException;
import io.whittle.jobs.ExecutorNames;
import io.whittle.jobs.Job.JobError;
import io.whittle.jobs.Job.KubernetesStatus;
import io.whittle.jobs.JobErrorCodes;
import io.whittle.jobs.JobPlacement;
import io.whittle.jobs.JobResources;
import io.whittle.jobs.JobSignals;
import io.whittle.jobs.JobState;
import io.whittle.jobs.JobStore;
import io.whittle.metrics.JobMetrics;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The Kubernetes executor ({@code whittle.executor=kubernetes}): every compression job runs in its own batch/v1 Job
 * whose pod runs {@code whittle worker --job <id>} and claims that job row with the usual lease. The API process
 * holding the leader lease (one replica at a time) dispatches and reconciles:
 * <ul>
 * <li><b>dispatch</b>: creates the Job of each queued job that has none, idempotently (the Job's name comes from the
 * job id; an existing Job is taken as created), and records its name;</li>
 * <li><b>reconcile</b>: reads the Jobs and pods of unfinished jobs, records the newest pod and its phase, and fails
 * a job when Kubernetes has given up (the Job failed: backoff limit, deadline), when its Job succeeded without a
 * recorded result, when its pod cannot start or be scheduled for too long, or when its Job disappeared.</li>
 * </ul>
 * Cancelling a job deletes its Job (propagation background); the pod gets SIGTERM and its worker stops at the next
 * layer boundary, recording the cancellation.
 */
public final class KubernetesExecutor implements JobPlacement, AutoCloseable {

    private static final Logger log = LoggerFactory.getLogger(KubernetesExecutor.class);
    /** The leader lease's name in {@code service_leader}. */
    public static final String LEADER = "kubernetes-executor";
    private static final int DISPATCH_BATCH = 50;

    private final KubernetesClient client;
    private final KubernetesExecutorSettings settings;
    private final WorkerJobs jobs;
    private final JobStore store;
    private final JobSignals signals;
    private final JobMetrics metrics;
    private final Clock clock;
    private final String owner;
    /** Jobs seen unfinished by the previous reconcile pass: their end, when next seen, is counted in the metrics. */
    private final Map<String, JobState> seenUnfinished = new HashMap<>();
    /** One dispatch or reconcile pass at a time (the loop, and callers such as tests). */
    private final Object passLock = new Object();
    private volatile boolean running;
    private Thread loop;

    /**
     * @param owner this process's name in the leader lease
     */
    public KubernetesExecutor(KubernetesClient client, KubernetesExecutorSettings settings, JobStore store,
                              JobSignals signals, JobMetrics metrics, Clock clock, String owner) {
        this.client = client;
        this.settings = settings;
        this.jobs = new WorkerJobs(settings);
        this.store = store;
        this.signals = signals == null ? new JobSignals() : signals;
        this.metrics = metrics == null ? JobMetrics.NONE : metrics;
        this.clock = clock;
        this.owner = owner;
    }

    public KubernetesExecutorSettings settings() {
        return settings;
    }

    public WorkerJobs workerJobs() {
        return jobs;
    }

    // ---- JobPlacement ------------------------------------------------------------------------------------------

    @Override
    public String executor() {
        return ExecutorNames.KUBERNETES;
    }

    @Override
    public JobResources checkResources(JobResources requested) {
        return JobPlacement.checkGpuResources(requested, settings.maxGpus(), settings.allowedGpuResources());
    }

    /** Deletes the job's Kubernetes Job; when that fails, the reconciler deletes it later (the row asks to cancel). */
    @Override
    public void cancelled(io.whittle.jobs.Job job) {
        String name = jobs.name(job.id());
        try {
            if (deleteJob(name)) {
                log.info("job {} cancelled: deleted Kubernetes Job {}", job.id(), name);
            }
        } catch (KubernetesClientException e) {
            log.warn("job {} cancelled, but deleting Kubernetes Job {} failed ({}); the reconciler retries", job.id(), name,
                    e.getMessage());
        }
    }

    // ---- the leader loop ---------------------------------------------------------------------------------------

    /** Starts the loop: while this process holds the leader lease, dispatch and reconcile every poll interval. */
    public synchronized void start() {
        if (running) {
            return;
        }
        running = true;
        loop = new Thread(this::loop, "whittle-kubernetes-executor");
        loop.setDaemon(true);
        loop.start();
        log.info("Kubernetes executor started: namespace {}, poll {}, as {}", settings.namespace(), settings.pollInterval(),
                owner);
    }

    public boolean isRunning() {
        return running;
    }

    /** Stops the loop and gives up the leader lease (another replica takes over at once). */
    public synchronized void stop() {
        if (!running) {
            return;
        }
        running = false;
        signals.signal();
        try {
            loop.join(settings.pollInterval().toMillis() + 10_000);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        try {
            store.resign(LEADER, owner);
        } catch (RuntimeException e) {
            log.warn("could not give up the executor's leader lease: {}", e.toString());
        }
    }

    @Override
    public void close() {
        stop();
    }

    private void loop() {
        boolean leading = false;
        while (running) {
            try {
                boolean lead = store.tryLead(LEADER, owner, settings.leaderLease());
                if (lead != leading) {
                    log.info("{} the Kubernetes executor's leader ({})", lead ? "became" : "is no longer", owner);
                    leading = lead;
                    synchronized (passLock) {
                        seenUnfinished.clear(); // another leader may have seen (and counted) ends meanwhile
                    }
                }
                if (lead) {
                    dispatch();
                    reconcile();
                }
            } catch (RuntimeException e) {
                log.warn("Kubernetes executor pass failed: {}", e.toString());
            }
            try {
                signals.await(settings.pollInterval());
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return;
            }
        }
    }

    // ---- dispatch ----------------------------------------------------------------------------------------------

    /**
     * Creates the Kubernetes Job of every queued job that has none (up to a batch per pass); returns how many were
     * created or found already created. Stops the pass at the first error the API server may recover from.
     */
    public int dispatch() {
        synchronized (passLock) {
            return dispatchPass();
        }
    }

    private int dispatchPass() {
        int dispatched = 0;
        for (io.whittle.jobs.Job job : store.awaitingDispatch(DISPATCH_BATCH)) {
            String name = jobs.name(job.id());
            Job k8s = jobs.build(job);
            try {
                client.batch().v1().jobs().inNamespace(settings.namespace()).resource(k8s).create();
                log.info("job {}: created Kubernetes Job {} ({} {})", job.id(), name, jobs.placement(job).gpus(),
                        jobs.placement(job).gpuResource());
            } catch (KubernetesClientException e) {
                if (e.getCode() == 409) { // created before (a pass that died before recording it, or another leader)
                    Job existing = client.batch().v1().jobs().inNamespace(settings.namespace()).withName(name).get();
                    String id = existing == null || existing.getMetadata().getLabels() == null ? null
                            : existing.getMetadata().getLabels().get(WorkerJobs.JOB_ID_LABEL);
                    if (!job.id().equals(id)) {
                        log.error("job {}: a Kubernetes Job named {} exists and is not this job's (job-id label {})",
                                job.id(), name, id);
                        continue;
                    }
                } else if (e.getCode() == 400 || e.getCode() == 422) { // the spec itself is refused: it never will be created
                    String why = "the Kubernetes API refused to create Job " + name + ": " + apiMessage(e);
                    if (store.failUnfinished(job.id(), new JobError(JobErrorCodes.WORKER_REJECTED, why))) {
                        metrics.jobCompleted(job.method(), "failed");
                    }
                    log.warn("job {}: {}", job.id(), why);
                    continue;
                } else {
                    log.warn("job {}: creating Kubernetes Job {} failed ({}); retrying next pass", job.id(), name,
                            apiMessage(e));
                    return dispatched;
                }
            }
            if (!store.markDispatched(job.id(), name)) {
                Optional<io.whittle.jobs.Job> now = store.find(job.id());
                boolean ours = now.isPresent() && now.get().kubernetes() != null && name.equals(now.get().kubernetes().job());
                if (!ours) { // cancelled (or gone) while the Job was created: it must not run
                    log.info("job {} ended while its Kubernetes Job was created; deleting {}", job.id(), name);
                    deleteJob(name);
                    continue;
                }
            }
            dispatched++;
        }
        return dispatched;
    }

    // ---- reconcile ---------------------------------------------------------------------------------------------

    /**
     * One reconciliation pass over the jobs that have a Kubernetes Job and have not ended (or ended within the
     * finished window): records their pods' state and fails those Kubernetes can no longer finish. Rows are read
     * before the Jobs are listed, and every transition is conditional on the row still being unfinished, so a worker
     * that records its result meanwhile wins.
     */
    public void reconcile() {
        synchronized (passLock) {
            reconcilePass();
        }
    }

    private void reconcilePass() {
        Instant now = clock.instant();
        List<io.whittle.jobs.Job> rows = store.dispatched(now.minus(settings.finishedWindow()));
        if (rows.isEmpty()) {
            seenUnfinished.clear();
            return;
        }
        String selector = WorkerJobs.MANAGED_BY_LABEL + "=" + WorkerJobs.MANAGED_BY;
        Map<String, Job> byJobId = new HashMap<>();
        for (Job j : client.batch().v1().jobs().inNamespace(settings.namespace()).withLabel(WorkerJobs.MANAGED_BY_LABEL,
                WorkerJobs.MANAGED_BY).list().getItems()) {
            String id = label(j.getMetadata().getLabels());
            if (id != null) {
                byJobId.put(id, j);
            }
        }
        Map<String, List<Pod>> podsByJobId = new HashMap<>();
        for (Pod p : client.pods().inNamespace(settings.namespace()).withLabel(WorkerJobs.MANAGED_BY_LABEL,
                WorkerJobs.MANAGED_BY).list().getItems()) {
            String id = label(p.getMetadata().getLabels());
            if (id != null) {
                podsByJobId.computeIfAbsent(id, k -> new ArrayList<>()).add(p);
            }
        }
        log.trace("reconciling {} job(s) against {} Job(s) ({})", rows.size(), byJobId.size(), selector);
        Map<String, JobState> unfinished = new HashMap<>();
        for (io.whittle.jobs.Job row : rows) {
            try {
                reconcile(row, byJobId.get(row.id()), podsByJobId.getOrDefault(row.id(), List.of()), now, unfinished);
            } catch (RuntimeException e) {
                log.warn("job {}: reconciling failed: {}", row.id(), e.toString());
                if (!row.state().isFinal()) {
                    unfinished.put(row.id(), row.state());
                }
            }
        }
        seenUnfinished.clear();
        seenUnfinished.putAll(unfinished);
    }

    private void reconcile(io.whittle.jobs.Job row, Job k8s, List<Pod> pods, Instant now, Map<String, JobState> unfinished) {
        String name = row.kubernetes().job();
        KubernetesStatus seen = k8s == null
                ? new KubernetesStatus(name, row.kubernetes().pod(), row.kubernetes().podPhase(), "Kubernetes Job deleted")
                : WorkerJobStatus.describe(name, k8s, pods);
        if (!Objects.equals(seen, row.kubernetes())) {
            store.updateKubernetesStatus(row.id(), seen.pod(), seen.podPhase(), seen.detail());
        }
        if (row.state().isFinal()) {
            countEnd(row);
            if (k8s != null && row.state() == JobState.CANCELLED && !WorkerJobStatus.isFinished(k8s)
                    && k8s.getMetadata().getDeletionTimestamp() == null) {
                deleteJob(name); // the cancel's own delete did not get through
            }
            return;
        }
        if (k8s == null) {
            Optional<JobState> closed = store.closeAbandoned(row.id(), new JobError(JobErrorCodes.WORKER_LOST,
                    "Kubernetes Job " + name + " no longer exists (deleted outside Whittle, or removed by "
                            + "ttlSecondsAfterFinished before the executor saw it end)"));
            closed.ifPresentOrElse(s -> {
                log.info("job {}: {} (its Kubernetes Job {} is gone)", row.id(), s, name);
                metrics.jobCompleted(row.method(), s.name().toLowerCase(Locale.ROOT));
            }, () -> unfinished.put(row.id(), row.state()));
            return;
        }
        if (row.cancelRequested() && !WorkerJobStatus.isFinished(k8s) && k8s.getMetadata().getDeletionTimestamp() == null) {
            deleteJob(name);
        }
        Optional<WorkerJobStatus.Verdict> verdict = WorkerJobStatus.verdict(name, k8s, pods, now,
                settings.unschedulableTimeout(), settings.startTimeout());
        if (verdict.isPresent()) {
            JobError error = verdict.get().error();
            if (store.failUnfinished(row.id(), error)) {
                log.info("job {} failed: {} {}", row.id(), error.code(), error.message());
                metrics.jobCompleted(row.method(), "failed");
            }
            if (verdict.get().deleteJob()) {
                deleteJob(name);
            }
            return;
        }
        unfinished.put(row.id(), row.state());
    }

    /**
     * Counts a job its pod finished (succeeded, failed or cancelled there) once, when a pass sees it ended after the
     * previous pass saw it unfinished: the pods' own metrics die with them.
     */
    private void countEnd(io.whittle.jobs.Job row) {
        if (seenUnfinished.remove(row.id()) == null) {
            return;
        }
        String outcome = row.state().name().toLowerCase(Locale.ROOT);
        metrics.jobCompleted(row.method(), outcome);
        if (row.state() == JobState.SUCCEEDED && row.startedAt() != null && row.finishedAt() != null) {
            String device = row.device() == null ? "cuda" : row.device();
            int colon = device.indexOf(':');
            metrics.jobDuration(row.method(), colon < 0 ? device : device.substring(0, colon),
                    Duration.between(row.startedAt(), row.finishedAt()));
        }
    }

    /** Deletes a Kubernetes Job and its pods (background propagation); false when there was none. */
    boolean deleteJob(String name) {
        return !client.batch().v1().jobs().inNamespace(settings.namespace()).withName(name)
                .withPropagationPolicy(DeletionPropagation.BACKGROUND).delete().isEmpty();
    }

    private static String label(Map<String, String> labels) {
        return labels == null ? null : labels.get(WorkerJobs.JOB_ID_LABEL);
    }

    private static String apiMessage(KubernetesClientException e) {
        if (e.getStatus() != null && e.getStatus().getMessage() != null) {
            return e.getStatus().getMessage();
        }
        return e.getMessage();
    }
}
