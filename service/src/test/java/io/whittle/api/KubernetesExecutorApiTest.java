package io.whittle.api;

import static org.assertj.core.api.Assertions.assertThat;

import io.fabric8.kubernetes.api.model.Container;
import io.fabric8.kubernetes.api.model.Pod;
import io.fabric8.kubernetes.api.model.PodBuilder;
import io.fabric8.kubernetes.api.model.Quantity;
import io.fabric8.kubernetes.api.model.batch.v1.Job;
import io.fabric8.kubernetes.client.KubernetesClient;
import io.fabric8.kubernetes.client.server.mock.KubernetesCrudDispatcher;
import io.fabric8.kubernetes.client.server.mock.KubernetesMockServer;
import io.fabric8.mockwebserver.Context;
import io.fabric8.mockwebserver.MockWebServer;
import io.whittle.app.JobsConfiguration;
import io.whittle.app.WhittleApplication;
import io.whittle.jobs.kubernetes.KubernetesExecutor;
import io.whittle.testing.Http;
import io.whittle.testing.ScaleMethod;
import io.whittle.testing.TestModels;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.HashMap;
import java.util.Map;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;
import org.springframework.beans.factory.annotation.Autowired;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.boot.test.web.server.LocalServerPort;
import org.springframework.context.ApplicationContext;
import org.springframework.test.context.DynamicPropertyRegistry;
import org.springframework.test.context.DynamicPropertySource;
import org.springframework.util.FileSystemUtils;
import tools.jackson.databind.JsonNode;

/**
 * The service with {@code whittle.executor=kubernetes} against fabric8's mock API server (CRUD mode): a submitted job
 * gets its Kubernetes Job from the leader loop, {@code GET /api/v1/jobs/{id}} shows the executor, the Job's name
 * and the pod's phase, {@code resources} are accepted and validated, a cancel deletes the Job, and the API process
 * runs no local worker slots.
 */
@SpringBootTest(classes = WhittleApplication.class, webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT)
class KubernetesExecutorApiTest {

    static final Duration WAIT = Duration.ofSeconds(30);
    static final String NS = "compression";
    static final Path DATA;
    static final KubernetesMockServer SERVER;
    static final KubernetesClient CLIENT;
    static final java.util.logging.Logger MOCK_LOG = java.util.logging.Logger.getLogger("io.fabric8.mockwebserver");

    static {
        MOCK_LOG.setLevel(java.util.logging.Level.WARNING);
        try {
            DATA = Files.createTempDirectory(Path.of(System.getProperty("java.io.tmpdir")), "whittle-k8s-api-");
            Files.writeString(DATA.resolve("pod-template.yaml"), """
                    spec:
                      serviceAccountName: whittle-worker
                      tolerations:
                        - {key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}
                      containers:
                        - name: whittle
                          envFrom:
                            - secretRef: {name: whittle-db}
                    """);
            Path models = Files.createDirectories(DATA.resolve("models"));
            TestModels.tinyMoe(models.resolve("tiny"), 2, 42);
            TestModels.tokens(models.resolve("calibration.json"), 2, 16, 128, 7);
        } catch (IOException e) {
            throw new ExceptionInInitializerError(e);
        }
        SERVER = new KubernetesMockServer(new Context(), new MockWebServer(), new HashMap<>(), new KubernetesCrudDispatcher(),
                false);
        SERVER.init();
        CLIENT = SERVER.createClient();
    }

    @DynamicPropertySource
    static void properties(DynamicPropertyRegistry r) {
        r.add("whittle.storage.data-dir", DATA::toString);
        r.add("whittle.executor", () -> "kubernetes"); // the short form of whittle.executor.mode
        r.add("whittle.executor.kubernetes.api-server-url", () -> SERVER.url("/"));
        r.add("whittle.executor.kubernetes.namespace", () -> NS);
        r.add("whittle.executor.kubernetes.image", () -> "ghcr.io/example/whittle:0.1.0");
        r.add("whittle.executor.kubernetes.pod-template-file", () -> DATA.resolve("pod-template.yaml").toString());
        r.add("whittle.executor.kubernetes.queue-name", () -> "gpu-h100");
        r.add("whittle.executor.kubernetes.poll-interval", () -> "100ms");
        r.add("whittle.executor.kubernetes.leader-lease", () -> "2s");
        r.add("whittle.api.events-poll-interval", () -> "50ms");
    }

    @AfterAll
    static void cleanUp() {
        CLIENT.close();
        SERVER.destroy();
        FileSystemUtils.deleteRecursively(DATA.toFile());
    }

    @LocalServerPort
    int port;
    @Autowired
    ApplicationContext context;

    String job(String extra) {
        return "{\"method\": \"" + ScaleMethod.NAME + "\", \"model\": \"tiny\", \"calibration\": \"calibration.json\", "
                + "\"params\": {\"factor\": 0.5}" + extra + "}";
    }

    Job k8sJob(String id) {
        return CLIENT.batch().v1().jobs().inNamespace(NS).withName("whittle-" + id).get();
    }

    @Test
    void aSubmittedJobGetsAKubernetesJobAndShowsItsPodPhase() {
        Http http = new Http(port, null);
        Http.Response submitted = http.post("/api/v1/jobs", job(", \"resources\": {\"gpus\": 1, \"gpuResource\": "
                + "\"nvidia.com/mig-3g.40gb\"}"));
        assertThat(submitted.status()).as(submitted.body()).isEqualTo(202);
        String id = submitted.json().path("id").stringValue();
        assertThat(submitted.json().path("executor").stringValue()).isEqualTo("kubernetes");
        assertThat(submitted.json().path("resources").path("gpus").asInt()).isEqualTo(1);
        assertThat(submitted.json().path("resources").path("gpuResource").stringValue()).isEqualTo("nvidia.com/mig-3g.40gb");

        JsonNode dispatched = http.await("/api/v1/jobs/" + id, WAIT, j -> j.path("kubernetes").path("job").isString());
        assertThat(dispatched.path("kubernetes").path("job").stringValue()).isEqualTo("whittle-" + id);
        assertThat(dispatched.path("state").stringValue()).as("no local worker takes it").isEqualTo("QUEUED");
        Job k = k8sJob(id);
        assertThat(k.getMetadata().getLabels()).containsEntry("kueue.x-k8s.io/queue-name", "gpu-h100")
                .containsEntry("whittle.io/job-id", id);
        Container c = k.getSpec().getTemplate().getSpec().getContainers().get(0);
        assertThat(c.getImage()).isEqualTo("ghcr.io/example/whittle:0.1.0");
        assertThat(c.getArgs()).containsExactly("worker", "--job", id);
        assertThat(c.getResources().getLimits()).containsOnly(Map.entry("nvidia.com/mig-3g.40gb", new Quantity("1")));
        assertThat(c.getEnvFrom().get(0).getSecretRef().getName()).isEqualTo("whittle-db");
        assertThat(k.getSpec().getTemplate().getSpec().getTolerations()).hasSize(1);

        // the Job controller's pod starts running (the mock has no controllers: the test plays it)
        Pod pod = new PodBuilder().withNewMetadata().withName("whittle-" + id + "-q8wz4").withNamespace(NS)
                .withCreationTimestamp("2026-11-28T12:00:00Z")
                .withLabels(k.getSpec().getTemplate().getMetadata().getLabels()).endMetadata()
                .withNewStatus().withPhase("Running").endStatus().build();
        CLIENT.pods().inNamespace(NS).resource(pod).create();
        JsonNode running = http.await("/api/v1/jobs/" + id, WAIT,
                j -> "Running".equals(j.path("kubernetes").path("podPhase").stringValue()));
        assertThat(running.path("kubernetes").path("pod").stringValue()).isEqualTo("whittle-" + id + "-q8wz4");

        Http.Response cancelled = http.delete("/api/v1/jobs/" + id);
        assertThat(cancelled.status()).as(cancelled.body()).isEqualTo(200);
        assertThat(cancelled.json().path("state").stringValue()).isEqualTo("CANCELLED");
        assertThat(k8sJob(id)).as("the cancelled job's Kubernetes Job").isNull();
    }

    @Test
    void placementRequestsAreValidatedAgainstTheExecutorsLimits() {
        Http http = new Http(port, null);
        Http.Response tooMany = http.post("/api/v1/jobs", job(", \"resources\": {\"gpus\": 9}"));
        assertThat(tooMany.status()).as(tooMany.body()).isEqualTo(400);
        assertThat(tooMany.json().path("code").stringValue()).isEqualTo("VALIDATION_FAILED");
        assertThat(tooMany.json().path("errors").path(0).path("field").stringValue()).isEqualTo("resources.gpus");
        assertThat(tooMany.json().path("detail").stringValue()).isEqualTo("resources.gpus: must be between 0 and 8, got 9");
        Http.Response other = http.post("/api/v1/jobs", job(", \"resources\": {\"gpuResource\": \"example.com/tpu\"}"));
        assertThat(other.status()).isEqualTo(400);
        assertThat(other.json().path("errors").path(0).path("field").stringValue()).isEqualTo("resources.gpuResource");
    }

    @Test
    void theApiProcessRunsTheExecutorAndNoWorkerSlots() {
        assertThat(context.getBeansOfType(JobsConfiguration.WorkerLifecycle.class)).isEmpty();
        assertThat(context.getBeansOfType(KubernetesExecutor.class)).hasSize(1);
        assertThat(context.getBean(KubernetesExecutor.class).settings().namespace()).isEqualTo(NS);
    }
}
