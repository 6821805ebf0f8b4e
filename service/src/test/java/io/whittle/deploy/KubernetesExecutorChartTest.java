package io.whittle.deploy;

import static io.whittle.deploy.HelmChartTest.FULLNAME;
import static io.whittle.deploy.HelmChartTest.at;
import static io.whittle.deploy.HelmChartTest.container;
import static io.whittle.deploy.HelmChartTest.env;
import static io.whittle.deploy.HelmChartTest.list;
import static io.whittle.deploy.HelmChartTest.map;
import static io.whittle.deploy.HelmChartTest.podSpec;
import static io.whittle.deploy.HelmChartTest.render;
import static org.assertj.core.api.Assertions.assertThat;

import com.marcnuri.helm.TemplateCommand;
import io.fabric8.kubernetes.api.model.Container;
import io.fabric8.kubernetes.api.model.PodTemplateSpec;
import io.fabric8.kubernetes.api.model.Quantity;
import io.fabric8.kubernetes.api.model.batch.v1.Job;
import io.whittle.app.KubernetesExecutorConfiguration;
import io.whittle.app.WhittleProperties;
import io.whittle.jobs.JobState;
import io.whittle.jobs.kubernetes.KubernetesExecutorSettings;
import io.whittle.jobs.kubernetes.WorkerJobs;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.Map;
import java.util.function.UnaryOperator;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.springframework.boot.context.properties.bind.Binder;
import org.springframework.boot.context.properties.source.ConfigurationPropertySources;
import org.springframework.boot.env.YamlPropertySourceLoader;
import org.springframework.core.io.ByteArrayResource;

/**
 * The chart with {@code executor.mode=kubernetes}: the API's ServiceAccount, Role (only the verbs the executor uses,
 * on Jobs and pods, in the release namespace) and RoleBinding, no worker Deployment, the API pods wired to the
 * executor's ConfigMap; and that ConfigMap read the way the service reads it: the pod template parses, the settings
 * bind, and the Job the executor builds from them runs the chart's image with the worker values.
 */
class KubernetesExecutorChartTest {

    static final String API_SA = FULLNAME + "-api";
    static final String EXECUTOR = FULLNAME + "-executor";

    @TempDir
    Path dir;

    static Map<String, Map<String, Object>> kubernetes(UnaryOperator<TemplateCommand> more) {
        return render(t -> more.apply(t.set("executor.mode", "kubernetes")));
    }

    @Test
    void kubernetesModeRendersTheRoleAndBindingAndNoWorkerDeployment() {
        Map<String, Map<String, Object>> m = kubernetes(t -> t);
        assertThat(m).containsKeys("ServiceAccount/" + API_SA, "Role/" + EXECUTOR, "RoleBinding/" + EXECUTOR,
                "ConfigMap/" + EXECUTOR, "Deployment/" + FULLNAME + "-api");
        assertThat(m).doesNotContainKeys("Deployment/" + FULLNAME + "-worker", "PodDisruptionBudget/" + FULLNAME + "-worker");
        assertThat(m.keySet()).noneMatch(k -> k.startsWith("ClusterRole"));

        Map<String, Object> role = m.get("Role/" + EXECUTOR);
        assertThat(list(role.get("rules"))).containsExactly(
                Map.of("apiGroups", List.of("batch"), "resources", List.of("jobs"), "verbs", List.of("create", "get", "list", "delete")),
                Map.of("apiGroups", List.of(""), "resources", List.of("pods"), "verbs", List.of("list")));
        Map<String, Object> binding = m.get("RoleBinding/" + EXECUTOR);
        assertThat(map(binding.get("roleRef"))).containsEntry("kind", "Role").containsEntry("name", EXECUTOR);
        assertThat(list(binding.get("subjects"))).containsExactly(
                Map.of("kind", "ServiceAccount", "name", API_SA, "namespace", "ml"));
        assertThat(m.get("ServiceAccount/" + API_SA)).containsEntry("automountServiceAccountToken", true);
        assertThat(m.get("ServiceAccount/" + FULLNAME)).as("the job pods' account").containsEntry("automountServiceAccountToken", false);

        Map<String, Object> apiPod = podSpec(m, FULLNAME + "-api");
        assertThat(apiPod).containsEntry("serviceAccountName", API_SA).containsEntry("automountServiceAccountToken", true);
        Map<String, Object> api = container(apiPod);
        assertThat(env(api, "SPRING_CONFIG_IMPORT")).containsEntry("value", "file:/etc/whittle/executor/executor.yaml");
        assertThat(list(api.get("volumeMounts"))).contains(Map.of("name", "executor", "mountPath", "/etc/whittle/executor",
                "readOnly", true));
        assertThat(list(apiPod.get("volumes"))).contains(Map.of("name", "executor", "configMap", Map.of("name", EXECUTOR)));
        assertThat(map(at(m.get("Deployment/" + FULLNAME + "-api"), "spec.template.metadata.annotations")))
                .containsKey("checksum/executor");
    }

    @Test
    void localModeRendersNoExecutorObjects() {
        Map<String, Map<String, Object>> m = render(t -> t);
        assertThat(m).containsKey("Deployment/" + FULLNAME + "-worker");
        assertThat(m).doesNotContainKeys("ServiceAccount/" + API_SA, "Role/" + EXECUTOR, "RoleBinding/" + EXECUTOR,
                "ConfigMap/" + EXECUTOR);
        Map<String, Object> apiPod = podSpec(m, FULLNAME + "-api");
        assertThat(apiPod).containsEntry("serviceAccountName", FULLNAME).containsEntry("automountServiceAccountToken", false);
        assertThat(HelmChartTest.envNames(container(apiPod))).doesNotContain("SPRING_CONFIG_IMPORT");
    }

    @Test
    void theExecutorReadsTheConfigMapAndBuildsJobsWithTheWorkerValues() throws Exception {
        Map<String, Map<String, Object>> m = kubernetes(t -> t.set("image.repository", "ghcr.io/acme/whittle")
                .set("image.tag", "1.4.0").set("worker.gpu.product", "NVIDIA-H100-80GB-HBM3")
                .set("executor.kubernetes.queueName", "gpu-h100").set("executor.kubernetes.backoffLimit", "4")
                .set("executor.kubernetes.jobLabels.team", "ml"));
        Map<String, Object> data = map(m.get("ConfigMap/" + EXECUTOR).get("data"));
        Path template = Files.writeString(dir.resolve("pod-template.yaml"), (String) data.get("pod-template.yaml"));
        PodTemplateSpec pod = KubernetesExecutorSettings.loadPodTemplate(template); // unknown fields would fail here

        WhittleProperties props = new Binder(ConfigurationPropertySources.from(new YamlPropertySourceLoader().load("executor",
                new ByteArrayResource(((String) data.get("executor.yaml")).getBytes(StandardCharsets.UTF_8)))))
                .bindOrCreate("whittle", WhittleProperties.class);
        assertThat(props.getExecutor().isKubernetes()).isTrue();
        WhittleProperties.Kubernetes k = props.getExecutor().getKubernetes();
        assertThat(k.getPodTemplateFile()).isEqualTo(Path.of("/etc/whittle/executor/pod-template.yaml"));
        assertThat(k.getLabels()).containsEntry("app.kubernetes.io/instance", "rel").containsEntry("team", "ml");
        k.setPodTemplateFile(template);
        KubernetesExecutorSettings settings = KubernetesExecutorConfiguration.settings(k, "ml");
        assertThat(settings.podTemplate()).isEqualTo(pod);
        assertThat(settings.ttlAfterFinished()).isEqualTo(Duration.ofHours(1));
        assertThat(settings.unschedulableTimeout()).isEqualTo(Duration.ofMinutes(15));

        String id = "5b0c6c1e-0d8a-4c43-9d0e-3f1b5c9a7e21";
        Job job = new WorkerJobs(settings).build(new io.whittle.jobs.Job(id, 1, "camera-p", JobState.QUEUED, 0, "/data/models/m",
                null, null, "/data/outputs/" + id, "{}", null, "auto", null, null, null, Instant.now(), null, null, 0, 3,
                null, null, false, io.whittle.jobs.Job.Progress.NONE, null, null, "kubernetes", null, null));
        assertThat(job.getMetadata().getName()).isEqualTo("whittle-" + id);
        assertThat(job.getMetadata().getLabels()).containsEntry("kueue.x-k8s.io/queue-name", "gpu-h100")
                .containsEntry("whittle.io/job-id", id).containsEntry("app.kubernetes.io/instance", "rel")
                .containsEntry("team", "ml").containsEntry("app.kubernetes.io/managed-by", "whittle-executor");
        assertThat(job.getSpec().getBackoffLimit()).isEqualTo(4);
        assertThat(job.getSpec().getTtlSecondsAfterFinished()).isEqualTo(3600);
        var spec = job.getSpec().getTemplate().getSpec();
        assertThat(spec.getServiceAccountName()).isEqualTo(FULLNAME);
        assertThat(spec.getAutomountServiceAccountToken()).isFalse();
        assertThat(spec.getRestartPolicy()).isEqualTo("Never");
        assertThat(spec.getNodeSelector()).containsEntry("nvidia.com/gpu.product", "NVIDIA-H100-80GB-HBM3");
        assertThat(spec.getTolerations()).anySatisfy(t -> assertThat(t.getKey()).isEqualTo("nvidia.com/gpu"));
        Container c = spec.getContainers().get(0);
        assertThat(c.getImage()).isEqualTo("ghcr.io/acme/whittle:1.4.0");
        assertThat(c.getArgs()).containsExactly("worker", "--job", id);
        assertThat(c.getCommand()).as("the image's entrypoint runs whittle").isNullOrEmpty();
        assertThat(c.getResources().getLimits()).containsEntry("nvidia.com/gpu", new Quantity("1"))
                .containsEntry("memory", new Quantity("64Gi"));
        assertThat(c.getEnv()).anySatisfy(e -> {
            assertThat(e.getName()).isEqualTo("SPRING_DATASOURCE_URL");
            assertThat(e.getValueFrom().getSecretKeyRef().getName()).isEqualTo("whittle-db");
        }).anySatisfy(e -> {
            assertThat(e.getName()).isEqualTo("WHITTLE_WORKER_ID");
            assertThat(e.getValue()).isEqualTo("$(POD_NAME)");
        });
        assertThat(spec.getVolumes()).filteredOn(v -> v.getPersistentVolumeClaim() != null).singleElement()
                .satisfies(v -> assertThat(v.getPersistentVolumeClaim().getClaimName()).isEqualTo(FULLNAME + "-data"));
    }

    @Test
    void executorValuesTheServiceWouldRefuseAreRefusedByName() {
        HelmChartTest.assertRefused(t -> t.set("executor.mode", "kubernetes")
                .set("executor.kubernetes.ttlSecondsAfterFinished", "10"), "executor.kubernetes.ttlSecondsAfterFinished");
        HelmChartTest.assertRefused(t -> t.set("executor.mode", "kubernetes").set("worker.gpu.count", "4")
                .set("executor.kubernetes.maxGpus", "2"), "executor.kubernetes.maxGpus");
        HelmChartTest.assertRefused(t -> t.set("executor.kubernetes.pollSeconds", "5"), "pollSeconds");
    }
}
