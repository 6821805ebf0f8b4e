package io.whittle.jobs.kubernetes;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.zaxxer.hikari.HikariDataSource;
import io.fabric8.kubernetes.api.model.Container;
import io.fabric8.kubernetes.api.model.ContainerStatusBuilder;
import io.fabric8.kubernetes.api.model.Pod;
import io.fabric8.kubernetes.api.model.PodBuilder;
import io.fabric8.kubernetes.api.model.PodTemplateSpec;
import io.fabric8.kubernetes.api.model.Quantity;
import io.fabric8.kubernetes.api.model.StatusBuilder;
import io.fabric8.kubernetes.api.model.batch.v1.Job;
import io.fabric8.kubernetes.api.model.batch.v1.JobConditionBuilder;
import io.fabric8.kubernetes.api.model.batch.v1.JobStatusBuilder;
import io.fabric8.kubernetes.client.KubernetesClient;
import io.fabric8.kubernetes.client.server.mock.EnableKubernetesMockClient;
import io.fabric8.kubernetes.client.server.mock.KubernetesMockServer;
import io.whittle.jobs.ExecutorNames;
import io.whittle.jobs.JobClaim;
import io.whittle.jobs.JobErrorCodes;
import io.whittle.jobs.JobResources;
import io.whittle.jobs.JobService;
import io.whittle.jobs.JobSignals;
import io.whittle.jobs.JobState;
import io.whittle.jobs.JobStore;
import io.whittle.jobs.JobValidationException;
import io.whittle.jobs.SingleJobWorker;
import io.whittle.jobs.StorageRoots;
import io.whittle.metrics.JobMetrics;
import io.whittle.testing.ScaleMethod;
import io.whittle.testing.TestDatabases;
import io.whittle.testing.TestModels;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.time.ZoneOffset;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The Kubernetes executor against fabric8's mock API server in CRUD mode and the job store on H2: the Job created
 * for a submitted job (image, args, GPU resources, labels, node selector, tolerations, volumes, Secret references,
 * Kueue), idempotent dispatch, cancellation deleting the Job, and the reconciler's verdicts from Job and pod status
 * (failed with the pod's reason, succeeded without a result, unschedulable, image pull back-off, Job deleted).
 */
@EnableKubernetesMockClient(crud = true, https = false)
class KubernetesExecutorTest {

    static final String NS = "whittle-test";
    /** The mock server logs every request through java.util.logging at INFO; kept quiet (and referenced, or it resets). */
    static final java.util.logging.Logger MOCK_LOG = java.util.logging.Logger.getLogger("io.fabric8.mockwebserver");

    static {
        MOCK_LOG.setLevel(java.util.logging.Level.WARNING);
    }

    static final String IMAGE = "registry.example/whittle:1.2.3";

    KubernetesMockServer server;
    KubernetesClient client;

    @TempDir
    Path dir;
    TestDatabases.Database db;
    HikariDataSource dataSource;
    JobStore store;
    JobService service;
    KubernetesExecutor executor;
    Path model;
    Path calibration;
    Instant now;
    final List<String> completed = new CopyOnWriteArrayList<>();

    static final String TEMPLATE = """
            metadata:
              labels:
                app.kubernetes.io/instance: prod
              annotations:
                prometheus.io/scrape: "false"
            spec:
              serviceAccountName: whittle-worker
              nodeSelector:
                nvidia.com/gpu.product: NVIDIA-H100-80GB-HBM3
              tolerations:
                - key: nvidia.com/gpu
                  operator: Exists
                  effect: NoSchedule
              securityContext:
                runAsNonRoot: true
                runAsUser: 10001
                fsGroup: 10001
              volumes:
                - name: data
                  persistentVolumeClaim:
                    claimName: whittle-data
              containers:
                - name: whittle
                  image: registry.example/whittle:template
                  resources:
                    requests:
                      cpu: "8"
                      memory: 64Gi
                    limits:
                      memory: 96Gi
                      nvidia.com/gpu: "1"
                  env:
                    - name: WHITTLE_STORAGE_OUTPUT_ROOT
                      value: /data/outputs
                  envFrom:
                    - secretRef:
                        name: whittle-db
                  volumeMounts:
                    - name: data
                      mountPath: /data
                  securityContext:
                    allowPrivilegeEscalation: false
            """;

    @BeforeEach
    void setUp() throws Exception {
        db = TestDatabases.h2(dir, false);
        db.migrate();
        dataSource = db.dataSource(4);
        now = Instant.parse("2026-11-28T12:00:00Z");
        store = new JobStore(dataSource, Clock.systemUTC());
        Path models = Files.createDirectories(dir.resolve("models"));
        model = models.resolve("tiny");
        TestModels.tinyMoe(model, 2, 42);
        calibration = TestModels.tokens(models.resolve("calibration.json"), 2, 16, 128, 7);
        Path templateFile = dir.resolve("pod-template.yaml");
        Files.writeString(templateFile, TEMPLATE);
        executor = executor(KubernetesExecutorSettings.loadPodTemplate(templateFile), IMAGE, Clock.fixed(now, ZoneOffset.UTC));
        service = new JobService(store, new StorageRoots(List.of(models), dir.resolve("outputs")), JobMetrics.NONE,
                new JobSignals(), 3, executor);
    }

    KubernetesExecutor executor(PodTemplateSpec template, String image, Clock clock) {
        KubernetesExecutorSettings settings = new KubernetesExecutorSettings(NS, template, image, "IfNotPresent", null,
                "whittle", List.of(), "nvidia.com/gpu", 1, 4, List.of("nvidia.com/gpu", "nvidia.com/mig-*"),
                Map.of("whittle.io/pool", "compression"), Map.of("team", "ml-infra"), Map.of("whittle.io/owner", "tests"),
                3, Duration.ofHours(6), Duration.ofMinutes(30), "gpu-queue", "batch-low", "compression-low", "whittle-",
                Duration.ofMillis(100), Duration.ofSeconds(2), Duration.ofMinutes(10), Duration.ofMinutes(5),
                Duration.ofMinutes(5));
        return new KubernetesExecutor(client, settings, store, new JobSignals(), new JobMetrics() {
            @Override
            public void jobCompleted(String method, String outcome) {
                completed.add(outcome);
            }
        }, clock, "api-0");
    }

    @AfterEach
    void tearDown() {
        executor.close();
        dataSource.close();
    }

    io.whittle.jobs.Job submit(String backend, JobResources resources) {
        return service.submit(new JobService.Submission(ScaleMethod.NAME, model.toString(), calibration.toString(), null,
                Map.of("factor", "0.5"), null, backend, 0, null, resources), null).job();
    }

    Job k8sJob(io.whittle.jobs.Job job) {
        return client.batch().v1().jobs().inNamespace(NS).withName("whittle-" + job.id()).get();
    }

    io.whittle.jobs.Job row(io.whittle.jobs.Job job) {
        return store.find(job.id()).orElseThrow();
    }

    @Test
    void theJobOfASubmittedJobRunsTheWorkerWithTheTemplateAndOneGpu() {
        io.whittle.jobs.Job job = submit("auto", null);
        assertThat(job.executor()).isEqualTo(ExecutorNames.KUBERNETES);
        assertThat(executor.dispatch()).isEqualTo(1);

        Job k = k8sJob(job);
        assertThat(k).as("the Kubernetes Job").isNotNull();
        assertThat(k.getMetadata().getNamespace()).isEqualTo(NS);
        assertThat(k.getMetadata().getLabels()).containsEntry("whittle.io/job-id", job.id())
                .containsEntry("whittle.io/method", ScaleMethod.NAME)
                .containsEntry("app.kubernetes.io/managed-by", "whittle-executor")
                .containsEntry("kueue.x-k8s.io/queue-name", "gpu-queue")
                .containsEntry("kueue.x-k8s.io/priority-class", "compression-low")
                .containsEntry("team", "ml-infra");
        assertThat(k.getMetadata().getAnnotations()).containsEntry("whittle.io/owner", "tests");
        assertThat(k.getSpec().getBackoffLimit()).isEqualTo(3);
        assertThat(k.getSpec().getActiveDeadlineSeconds()).isEqualTo(6 * 3600L);
        assertThat(k.getSpec().getTtlSecondsAfterFinished()).isEqualTo(30 * 60);
        var rules = k.getSpec().getPodFailurePolicy().getRules();
        assertThat(rules).hasSize(2);
        assertThat(rules.get(0).getAction()).isEqualTo("FailJob");
        assertThat(rules.get(0).getOnExitCodes().getContainerName()).isEqualTo("whittle");
        assertThat(rules.get(0).getOnExitCodes().getValues()).containsExactly(SingleJobWorker.EXIT_FINAL);
        assertThat(rules.get(1).getAction()).isEqualTo("Ignore");
        assertThat(rules.get(1).getOnPodConditions().get(0).getType()).isEqualTo("DisruptionTarget");

        PodTemplateSpec t = k.getSpec().getTemplate();
        assertThat(t.getMetadata().getLabels()).containsEntry("whittle.io/job-id", job.id())
                .containsEntry("app.kubernetes.io/instance", "prod").containsEntry("team", "ml-infra");
        assertThat(t.getMetadata().getAnnotations()).containsEntry("prometheus.io/scrape", "false")
                .containsEntry("whittle.io/owner", "tests");
        var spec = t.getSpec();
        assertThat(spec.getRestartPolicy()).isEqualTo("Never");
        assertThat(spec.getServiceAccountName()).isEqualTo("whittle-worker");
        assertThat(spec.getPriorityClassName()).isEqualTo("batch-low");
        assertThat(spec.getNodeSelector()).containsOnly(Map.entry("nvidia.com/gpu.product", "NVIDIA-H100-80GB-HBM3"),
                Map.entry("whittle.io/pool", "compression"));
        assertThat(spec.getTolerations()).singleElement().satisfies(tol -> {
            assertThat(tol.getKey()).isEqualTo("nvidia.com/gpu");
            assertThat(tol.getOperator()).isEqualTo("Exists");
            assertThat(tol.getEffect()).isEqualTo("NoSchedule");
        });
        assertThat(spec.getSecurityContext().getRunAsNonRoot()).isTrue();
        assertThat(spec.getSecurityContext().getRunAsUser()).isEqualTo(10001L);
        assertThat(spec.getVolumes()).singleElement()
                .satisfies(v -> assertThat(v.getPersistentVolumeClaim().getClaimName()).isEqualTo("whittle-data"));

        Container c = spec.getContainers().get(0);
        assertThat(spec.getContainers()).hasSize(1);
        assertThat(c.getName()).isEqualTo("whittle");
        assertThat(c.getImage()).as("the configured image overrides the template's").isEqualTo(IMAGE);
        assertThat(c.getImagePullPolicy()).isEqualTo("IfNotPresent");
        assertThat(c.getArgs()).containsExactly("worker", "--job", job.id());
        assertThat(c.getCommand()).as("the image's entrypoint").isEmpty();
        assertThat(c.getResources().getLimits()).containsOnly(Map.entry("memory", new Quantity("96Gi")),
                Map.entry("nvidia.com/gpu", new Quantity("1")));
        assertThat(c.getResources().getRequests()).containsOnly(Map.entry("cpu", new Quantity("8")),
                Map.entry("memory", new Quantity("64Gi")));
        assertThat(c.getEnvFrom()).singleElement().satisfies(e -> assertThat(e.getSecretRef().getName()).isEqualTo("whittle-db"));
        assertThat(c.getEnv()).anySatisfy(e -> {
            assertThat(e.getName()).isEqualTo("WHITTLE_WORKER_ID");
            assertThat(e.getValueFrom().getFieldRef().getFieldPath()).isEqualTo("metadata.name");
        }).anySatisfy(e -> assertThat(e.getName()).isEqualTo("WHITTLE_STORAGE_OUTPUT_ROOT"))
                .noneSatisfy(e -> assertThat(e.getName()).isEqualTo("NVIDIA_VISIBLE_DEVICES"));
        assertThat(c.getVolumeMounts()).singleElement().satisfies(m -> assertThat(m.getMountPath()).isEqualTo("/data"));
        assertThat(c.getSecurityContext().getAllowPrivilegeEscalation()).isFalse();
        assertThat(c.getTerminationMessagePolicy()).isEqualTo("FallbackToLogsOnError");

        io.whittle.jobs.Job dispatched = row(job);
        assertThat(dispatched.state()).isEqualTo(JobState.QUEUED);
        assertThat(dispatched.kubernetes().job()).isEqualTo("whittle-" + job.id());
        assertThat(executor.dispatch()).as("a second pass").isZero();
        assertThat(client.batch().v1().jobs().inNamespace(NS).list().getItems()).hasSize(1);
    }

    @Test
    void aJobAsksForAMigSliceOrNoGpu() {
        io.whittle.jobs.Job mig = submit("cuda", new JobResources(2, "nvidia.com/mig-3g.40gb"));
        io.whittle.jobs.Job cpu = submit("cpu", null);
        assertThat(executor.dispatch()).isEqualTo(2);

        Container m = k8sJob(mig).getSpec().getTemplate().getSpec().getContainers().get(0);
        assertThat(m.getResources().getLimits()).as("the template's nvidia.com/gpu is replaced")
                .containsOnly(Map.entry("memory", new Quantity("96Gi")), Map.entry("nvidia.com/mig-3g.40gb", new Quantity("2")));
        assertThat(row(mig).resources()).isEqualTo(new JobResources(2, "nvidia.com/mig-3g.40gb"));

        Container c = k8sJob(cpu).getSpec().getTemplate().getSpec().getContainers().get(0);
        assertThat(c.getResources().getLimits()).containsOnly(Map.entry("memory", new Quantity("96Gi")));
        assertThat(c.getEnv()).anySatisfy(e -> {
            assertThat(e.getName()).isEqualTo("NVIDIA_VISIBLE_DEVICES");
            assertThat(e.getValue()).isEqualTo("void");
        });
    }

    @Test
    void placementRequestsAreValidated() {
        assertThatThrownBy(() -> submit("auto", new JobResources(5, null))).isInstanceOf(JobValidationException.class)
                .hasMessageContaining("resources.gpus").hasMessageContaining("between 0 and 4, got 5");
        assertThatThrownBy(() -> submit("auto", new JobResources(1, "amd.com/gpu"))).isInstanceOf(JobValidationException.class)
                .hasMessageContaining("resources.gpuResource").hasMessageContaining("'amd.com/gpu' is not one of");
        assertThatThrownBy(() -> submit("cuda", new JobResources(0, null))).isInstanceOf(JobValidationException.class)
                .hasMessageContaining("resources.gpus: must be at least 1 for a job with backend cuda");
        assertThatThrownBy(() -> new JobResources(1, "not a resource")).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("is not a Kubernetes extended resource name");
        JobService local = new JobService(store, new StorageRoots(List.of(model.getParent()), dir.resolve("outputs")),
                JobMetrics.NONE, new JobSignals(), 3);
        assertThatThrownBy(() -> local.submit(new JobService.Submission(ScaleMethod.NAME, model.toString(),
                calibration.toString(), null, Map.of("factor", "0.5"), null, "auto", 0, null, new JobResources(1, null)), null))
                .isInstanceOf(JobValidationException.class)
                .hasMessageContaining("resources: is only accepted with the Kubernetes executor");
        assertThat(store.list(null, null, null, 10)).isEmpty();
    }

    @Test
    void aJobCreatedBeforeAPassDiedIsAdoptedNotDuplicated() {
        io.whittle.jobs.Job job = submit("auto", null);
        // a previous leader created the Job and died before recording it
        client.batch().v1().jobs().inNamespace(NS).resource(executor.workerJobs().build(row(job))).create();
        assertThat(row(job).kubernetes()).isNull();
        assertThat(executor.dispatch()).isEqualTo(1);
        assertThat(row(job).kubernetes().job()).isEqualTo("whittle-" + job.id());
        assertThat(client.batch().v1().jobs().inNamespace(NS).list().getItems()).hasSize(1);
    }

    @Test
    void aJobTheApiServerRefusesAsInvalidFailsAndAForbiddenOneWaits() {
        io.whittle.jobs.Job job = submit("auto", null);
        String path = "/apis/batch/v1/namespaces/" + NS + "/jobs";
        // (the client itself retries 5xx answers; an error it gives up on waits for the next pass)
        server.expect().post().withPath(path).andReturn(403, new StatusBuilder().withCode(403).withReason("Forbidden")
                .withMessage("jobs.batch is forbidden: User \"system:serviceaccount:ml:default\" cannot create resource "
                        + "\"jobs\" in API group \"batch\" in the namespace \"ml\"").build()).once();
        assertThat(executor.dispatch()).isZero();
        assertThat(row(job).state()).as("retried next pass (e.g. once the Role exists)").isEqualTo(JobState.QUEUED);
        assertThat(row(job).kubernetes()).isNull();

        server.expect().post().withPath(path).andReturn(422, new StatusBuilder().withCode(422).withReason("Invalid")
                .withMessage("Job.batch \"whittle-" + job.id() + "\" is invalid: spec.template.spec.containers[0].image: "
                        + "Required value").build()).once();
        assertThat(executor.dispatch()).isZero();
        io.whittle.jobs.Job failed = row(job);
        assertThat(failed.state()).isEqualTo(JobState.FAILED);
        assertThat(failed.error().code()).isEqualTo(JobErrorCodes.WORKER_REJECTED);
        assertThat(failed.error().message()).isEqualTo("the Kubernetes API refused to create Job whittle-" + job.id()
                + ": Job.batch \"whittle-" + job.id() + "\" is invalid: spec.template.spec.containers[0].image: Required value");
        assertThat(executor.dispatch()).as("nothing left to dispatch").isZero();
    }

    @Test
    void cancellingAJobDeletesItsKubernetesJob() throws InterruptedException {
        io.whittle.jobs.Job queued = submit("auto", null);
        io.whittle.jobs.Job running = submit("auto", null);
        executor.dispatch();
        assertThat(store.claimJob(running.id(), "whittle-pod-1", Duration.ofSeconds(2), "cuda:0", j -> {
        })).isInstanceOf(JobClaim.Claimed.class);
        assertThat(k8sJob(queued)).isNotNull();
        assertThat(k8sJob(running)).isNotNull();

        assertThat(service.cancel(queued.id())).isEqualTo(io.whittle.jobs.JobStore.CancelOutcome.CANCELLED);
        assertThat(k8sJob(queued)).as("the queued job's Kubernetes Job").isNull();
        assertThat(row(queued).state()).isEqualTo(JobState.CANCELLED);

        assertThat(service.cancel(running.id())).isEqualTo(io.whittle.jobs.JobStore.CancelOutcome.REQUESTED);
        assertThat(k8sJob(running)).as("the running job's Kubernetes Job (its pod gets SIGTERM)").isNull();
        io.whittle.jobs.Job r = row(running);
        assertThat(r.state()).as("the worker records the cancellation when it stops").isEqualTo(JobState.RUNNING);
        assertThat(r.cancelRequested()).isTrue();
        executor.reconcile();
        assertThat(row(running).state()).as("its worker still holds the lease").isEqualTo(JobState.RUNNING);

        // its pod died before recording the cancellation: once the lease has expired the reconciler records it
        while (row(running).leaseUntil().isAfter(Instant.now().minusMillis(50))) {
            Thread.sleep(50);
        }
        executor.reconcile();
        io.whittle.jobs.Job closed = row(running);
        assertThat(closed.state()).isEqualTo(JobState.CANCELLED);
        assertThat(closed.error().code()).isEqualTo(JobErrorCodes.CANCELLED);
        assertThat(completed).containsExactly("cancelled");

        // a delete that did not get through (the API server was down): the reconciler deletes the Job
        client.batch().v1().jobs().inNamespace(NS).resource(executor.workerJobs().build(row(queued))).create();
        executor.reconcile();
        assertThat(k8sJob(queued)).as("the cancelled job's Job, deleted again").isNull();
    }

    @Test
    void aRunningPodsPhaseIsRecordedAndAFailedJobFailsWithThePodsReason() {
        io.whittle.jobs.Job job = submit("auto", null);
        executor.dispatch();
        String name = "whittle-" + job.id();
        store.claimJob(job.id(), name + "-a1b2c", Duration.ofMinutes(1), "cuda:0", j -> {
        });
        pod(job, name + "-a1b2c", "2026-11-28T11:50:00Z", "Running", null);
        executor.reconcile();
        io.whittle.jobs.Job running = row(job);
        assertThat(running.kubernetes()).isEqualTo(new io.whittle.jobs.Job.KubernetesStatus(name, name + "-a1b2c",
                "Running", null));

        // the pod is OOM-killed, Kubernetes retries up to the backoff limit, then gives up
        pod(job, name + "-a1b2c", "2026-11-28T11:50:00Z", "Failed", new ContainerStatusBuilder().withName("whittle")
                .withNewState().withNewTerminated().withReason("OOMKilled").withExitCode(137)
                .withFinishedAt("2026-11-28T11:58:00Z").endTerminated().endState().build());
        jobStatus(job, "Failed", "BackoffLimitExceeded", "Job has reached the specified backoff limit");
        executor.reconcile();
        io.whittle.jobs.Job failed = row(job);
        assertThat(failed.state()).isEqualTo(JobState.FAILED);
        assertThat(failed.error().code()).isEqualTo(JobErrorCodes.OUT_OF_MEMORY);
        assertThat(failed.error().message()).isEqualTo("Kubernetes Job " + name + " failed (BackoffLimitExceeded: Job has "
                + "reached the specified backoff limit); pod " + name + "-a1b2c: container whittle terminated: OOMKilled "
                + "(exit code 137)");
        assertThat(failed.leaseOwner()).isNull();
        assertThat(failed.finishedAt()).isNotNull();
        assertThat(failed.kubernetes().podPhase()).isEqualTo("Failed");
        assertThat(completed).containsExactly("failed");
        // the dead pod's worker can no longer record anything
        assertThat(store.heartbeat(job.id(), name + "-a1b2c", Duration.ofMinutes(1)).held()).isFalse();
    }

    @Test
    void aJobPastItsDeadlineFailsWithTheWorkersLastMessage() {
        io.whittle.jobs.Job job = submit("auto", null);
        executor.dispatch();
        String name = "whittle-" + job.id();
        pod(job, name + "-zz9yx", "2026-11-28T06:00:00Z", "Failed", new ContainerStatusBuilder().withName("whittle")
                .withNewState().withNewTerminated().withReason("Error").withExitCode(143)
                .withMessage("lost the lease of job " + job.id()).withFinishedAt("2026-11-28T11:59:00Z").endTerminated()
                .endState().build());
        jobStatus(job, "Failed", "DeadlineExceeded", "Job was active longer than specified deadline");
        executor.reconcile();
        io.whittle.jobs.Job failed = row(job);
        assertThat(failed.error().code()).isEqualTo(JobErrorCodes.WORKER_FAILED);
        assertThat(failed.error().message()).contains("(DeadlineExceeded: Job was active longer than specified deadline)")
                .contains("Error (exit code 143): lost the lease of job " + job.id());
    }

    @Test
    void aJobThatSucceededWithoutARecordedResultFails() {
        io.whittle.jobs.Job lost = submit("auto", null);
        io.whittle.jobs.Job done = submit("auto", null);
        executor.dispatch();
        store.claimJob(lost.id(), "pod-lost", Duration.ofMinutes(1), "cuda:0", j -> {
        });
        JobClaim claim = store.claimJob(done.id(), "pod-done", Duration.ofMinutes(1), "cuda:0", j -> {
        });
        assertThat(claim).isInstanceOf(JobClaim.Claimed.class);
        executor.reconcile(); // both seen running
        assertThat(completed).isEmpty();
        assertThat(store.finish(done.id(), "pod-done", JobState.SUCCEEDED, null,
                new io.whittle.jobs.Job.JobOutput("/out/x", "/out/x/report.json"), "cuda:0", null)).isTrue();
        jobStatus(lost, "Complete", null, null);
        jobStatus(done, "Complete", null, null);

        executor.reconcile();
        io.whittle.jobs.Job failed = row(lost);
        assertThat(failed.state()).as("not left RUNNING").isEqualTo(JobState.FAILED);
        assertThat(failed.error().code()).isEqualTo(JobErrorCodes.WORKER_NO_RESULT);
        assertThat(failed.error().message()).isEqualTo("Kubernetes Job whittle-" + lost.id()
                + " completed but its worker recorded no result");
        assertThat(row(done).state()).isEqualTo(JobState.SUCCEEDED);
        assertThat(row(done).result().output()).isEqualTo("/out/x");
        // the pods' metrics die with them: the executor counts both ends, once
        assertThat(completed).containsExactlyInAnyOrder("failed", "succeeded");
        executor.reconcile();
        assertThat(completed).hasSize(2);
    }

    @Test
    void aPodUnschedulableForTooLongFailsTheJobAndDeletesItsKubernetesJob() {
        io.whittle.jobs.Job recent = submit("auto", null);
        io.whittle.jobs.Job stuck = submit("auto", null);
        executor.dispatch();
        unschedulable(recent, "2026-11-28T11:55:00Z");
        unschedulable(stuck, "2026-11-28T11:45:00Z");
        executor.reconcile();

        io.whittle.jobs.Job waiting = row(recent);
        assertThat(waiting.state()).isEqualTo(JobState.QUEUED);
        assertThat(waiting.kubernetes().podPhase()).isEqualTo("Pending");
        assertThat(waiting.kubernetes().detail()).isEqualTo("Unschedulable: 0/4 nodes are available: 4 Insufficient nvidia.com/gpu.");
        assertThat(k8sJob(recent)).isNotNull();

        io.whittle.jobs.Job failed = row(stuck);
        assertThat(failed.state()).isEqualTo(JobState.FAILED);
        assertThat(failed.error().code()).isEqualTo(JobErrorCodes.WORKER_UNSCHEDULABLE);
        assertThat(failed.error().message()).isEqualTo("pod whittle-" + stuck.id() + "-p0d00 of Kubernetes Job whittle-"
                + stuck.id() + " was Unschedulable for 15 minutes: 0/4 nodes are available: 4 Insufficient nvidia.com/gpu.");
        assertThat(k8sJob(stuck)).as("deleted: it would go on waiting").isNull();
    }

    @Test
    void aPodThatCannotPullItsImageFailsTheJobAfterTheStartTimeout() {
        io.whittle.jobs.Job job = submit("auto", null);
        executor.dispatch();
        String pod = "whittle-" + job.id() + "-im4ge";
        pod(job, pod, "2026-11-28T11:50:00Z", "Pending", new ContainerStatusBuilder().withName("whittle")
                .withNewState().withNewWaiting().withReason("ImagePullBackOff")
                .withMessage("Back-off pulling image \"" + IMAGE + "\"").endWaiting().endState().build());
        executor.reconcile();
        io.whittle.jobs.Job failed = row(job);
        assertThat(failed.state()).isEqualTo(JobState.FAILED);
        assertThat(failed.error().code()).isEqualTo(JobErrorCodes.WORKER_START_FAILED);
        assertThat(failed.error().message()).isEqualTo("pod " + pod + " of Kubernetes Job whittle-" + job.id()
                + " could not start for 10 minutes: container whittle ImagePullBackOff: Back-off pulling image \"" + IMAGE + "\"");
        assertThat(k8sJob(job)).isNull();
    }

    @Test
    void aKubernetesJobDeletedOutsideWhittleFailsItsJobOnceNoLeaseIsLive() {
        io.whittle.jobs.Job queued = submit("auto", null);
        io.whittle.jobs.Job held = submit("auto", null);
        executor.dispatch();
        store.claimJob(held.id(), "pod-alive", Duration.ofMinutes(5), "cuda:0", j -> {
        });
        client.batch().v1().jobs().inNamespace(NS).withName("whittle-" + queued.id()).delete();
        client.batch().v1().jobs().inNamespace(NS).withName("whittle-" + held.id()).delete();
        executor.reconcile();

        io.whittle.jobs.Job lost = row(queued);
        assertThat(lost.state()).isEqualTo(JobState.FAILED);
        assertThat(lost.error().code()).isEqualTo(JobErrorCodes.WORKER_LOST);
        assertThat(lost.error().message()).startsWith("Kubernetes Job whittle-" + queued.id() + " no longer exists");
        assertThat(row(held).state()).as("a live lease: its worker may still record the result").isEqualTo(JobState.RUNNING);
        assertThat(row(held).kubernetes().detail()).isEqualTo("Kubernetes Job deleted");
    }

    @Test
    void theLeaderLoopDispatchesSubmittedJobs() throws Exception {
        JobSignals signals = new JobSignals();
        KubernetesExecutor leader = new KubernetesExecutor(client, executor.settings(), store, signals, JobMetrics.NONE,
                Clock.systemUTC(), "api-1");
        KubernetesExecutor follower = new KubernetesExecutor(client, executor.settings(), store, signals, JobMetrics.NONE,
                Clock.systemUTC(), "api-2");
        assertThat(store.tryLead(KubernetesExecutor.LEADER, "api-1", Duration.ofMinutes(1))).isTrue();
        try {
            leader.start();
            follower.start();
            io.whittle.jobs.Job job = submit("auto", null);
            signals.signal();
            long deadline = System.nanoTime() + Duration.ofSeconds(30).toNanos();
            while (row(job).kubernetes() == null && System.nanoTime() < deadline) {
                Thread.sleep(20);
            }
            assertThat(row(job).kubernetes()).as("dispatched by the leader loop").isNotNull();
            assertThat(k8sJob(job)).isNotNull();
        } finally {
            follower.stop();
            leader.stop();
        }
        assertThat(store.tryLead(KubernetesExecutor.LEADER, "api-3", Duration.ofMinutes(1)))
                .as("the stopped leader gave the lease up").isTrue();
    }

    void unschedulable(io.whittle.jobs.Job job, String since) {
        Pod p = new PodBuilder().withNewMetadata().withName("whittle-" + job.id() + "-p0d00").withNamespace(NS)
                .withCreationTimestamp(since).withLabels(Map.of("app.kubernetes.io/managed-by", "whittle-executor",
                        "whittle.io/job-id", job.id())).endMetadata()
                .withNewStatus().withPhase("Pending").addNewCondition().withType("PodScheduled").withStatus("False")
                .withReason("Unschedulable").withMessage("0/4 nodes are available: 4 Insufficient nvidia.com/gpu.")
                .withLastTransitionTime(since).endCondition().endStatus().build();
        client.pods().inNamespace(NS).resource(p).create();
    }

    void pod(io.whittle.jobs.Job job, String name, String created, String phase, io.fabric8.kubernetes.api.model.ContainerStatus cs) {
        Pod p = new PodBuilder().withNewMetadata().withName(name).withNamespace(NS).withCreationTimestamp(created)
                .withLabels(Map.of("app.kubernetes.io/managed-by", "whittle-executor", "whittle.io/job-id", job.id()))
                .endMetadata()
                .withNewStatus().withPhase(phase).withStartTime(created)
                .withContainerStatuses(cs == null ? List.of() : List.of(cs)).endStatus().build();
        client.pods().inNamespace(NS).resource(p).createOr(existing -> existing.update());
    }

    void jobStatus(io.whittle.jobs.Job job, String condition, String reason, String message) {
        Job k = k8sJob(job);
        k.setStatus(new JobStatusBuilder().addToConditions(new JobConditionBuilder().withType(condition).withStatus("True")
                .withReason(reason).withMessage(message).build()).build());
        client.batch().v1().jobs().inNamespace(NS).resource(k).updateStatus();
    }
}
