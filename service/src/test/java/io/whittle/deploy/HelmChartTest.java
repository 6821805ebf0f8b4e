package io.whittle.deploy;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.marcnuri.helm.Helm;
import com.marcnuri.helm.LintResult;
import com.marcnuri.helm.TemplateCommand;
import io.whittle.testing.Http;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.function.UnaryOperator;
import org.junit.jupiter.api.Test;
import org.yaml.snakeyaml.Yaml;
import tools.jackson.databind.JsonNode;

/**
 * The Helm chart, linted and rendered by Helm itself (helm-java bundles Helm's Go library): lint passes, and
 * {@code template} with the defaults and with overridden values gives the expected GPU resources, node selection,
 * environment, probes, Secret references and monitoring objects; values Helm's schema or the chart's checks refuse
 * fail with a message naming the value.
 */
class HelmChartTest {

    static final String RELEASE = "rel";
    static final String FULLNAME = "rel-whittle";

    static Helm helm() {
        return new Helm(DeployPaths.chart());
    }

    /** Rendered manifests by "Kind/name". */
    static Map<String, Map<String, Object>> render(UnaryOperator<TemplateCommand> values) {
        String yaml = values.apply(helm().template().withName(RELEASE).withNamespace("ml")).call();
        Map<String, Map<String, Object>> out = new LinkedHashMap<>();
        for (Object doc : new Yaml().loadAll(yaml)) {
            if (doc != null) {
                Map<String, Object> m = map(doc);
                String key = m.get("kind") + "/" + map(m.get("metadata")).get("name");
                assertThat(out.put(key, m)).as("duplicate " + key).isNull();
            }
        }
        return out;
    }

    @SuppressWarnings("unchecked")
    static Map<String, Object> map(Object o) {
        assertThat(o).isInstanceOf(Map.class);
        return (Map<String, Object>) o;
    }

    @SuppressWarnings("unchecked")
    static List<Object> list(Object o) {
        assertThat(o).isInstanceOf(List.class);
        return (List<Object>) o;
    }

    /** Follows a dotted path through maps ("spec.template.spec"). */
    static Object at(Map<String, Object> root, String path) {
        Object cur = root;
        for (String part : path.split("\\.")) {
            cur = cur == null ? null : map(cur).get(part);
        }
        return cur;
    }

    static Map<String, Object> podSpec(Map<String, Map<String, Object>> manifests, String deployment) {
        Map<String, Object> d = manifests.get("Deployment/" + deployment);
        assertThat(d).as(deployment + " in " + manifests.keySet()).isNotNull();
        return map(at(d, "spec.template.spec"));
    }

    static Map<String, Object> container(Map<String, Object> podSpec) {
        List<Object> containers = list(podSpec.get("containers"));
        assertThat(containers).hasSize(1);
        return map(containers.get(0));
    }

    /** A container's environment variable by name (the whole entry, to see valueFrom). */
    static Map<String, Object> env(Map<String, Object> container, String name) {
        for (Object e : list(container.get("env"))) {
            if (name.equals(map(e).get("name"))) {
                return map(e);
            }
        }
        throw new AssertionError("no env " + name + " in " + container.get("env"));
    }

    static List<String> envNames(Map<String, Object> container) {
        List<String> out = new ArrayList<>();
        list(container.get("env")).forEach(e -> out.add((String) map(e).get("name")));
        return out;
    }

    static void assertSecretRef(Map<String, Object> container, String env, String secret, String key) {
        Map<String, Object> ref = map(at(env(container, env), "valueFrom.secretKeyRef"));
        assertThat(ref).containsEntry("name", secret).containsEntry("key", key);
    }

    @Test
    void lintPasses() {
        LintResult result = helm().lint().strict().call();
        assertThat(result.isFailed()).as(String.join("\n", result.getMessages())).isFalse();
    }

    @Test
    void defaultsRenderApiAndOneGpuWorkerPerPod() {
        Map<String, Map<String, Object>> m = render(t -> t);
        assertThat(m.keySet()).containsExactlyInAnyOrder("ServiceAccount/" + FULLNAME, "PersistentVolumeClaim/" + FULLNAME + "-data",
                "Service/" + FULLNAME + "-api", "Service/" + FULLNAME + "-worker", "Deployment/" + FULLNAME + "-api",
                "Deployment/" + FULLNAME + "-worker", "PodDisruptionBudget/" + FULLNAME + "-api",
                "PodDisruptionBudget/" + FULLNAME + "-worker", "ConfigMap/" + FULLNAME + "-dashboard-jobs",
                "ConfigMap/" + FULLNAME + "-dashboard-compute", "ConfigMap/" + FULLNAME + "-dashboard-jvm");

        // API pods: replicas, no GPU, role api
        assertThat(at(m.get("Deployment/" + FULLNAME + "-api"), "spec.replicas")).isEqualTo(2);
        Map<String, Object> apiPod = podSpec(m, FULLNAME + "-api");
        Map<String, Object> api = container(apiPod);
        assertThat(list(api.get("args"))).containsExactly("serve", "--role", "api", "--port", "8080");
        assertThat(String.valueOf(api.get("resources"))).doesNotContain("nvidia.com");
        assertThat(apiPod).doesNotContainKeys("nodeSelector", "tolerations", "runtimeClassName");
        assertThat((String) env(api, "JAVA_TOOL_OPTIONS").get("value")).contains("-XX:MaxRAMPercentage=75",
                "-Djava.io.tmpdir=/tmp", "-Dai.djl.offline=true");

        // worker pods: one nvidia.com/gpu each, the GPU taint tolerated, role worker, lease settings
        assertThat(at(m.get("Deployment/" + FULLNAME + "-worker"), "spec.replicas")).isEqualTo(1);
        Map<String, Object> workerPod = podSpec(m, FULLNAME + "-worker");
        Map<String, Object> worker = container(workerPod);
        assertThat(list(worker.get("args"))).containsExactly("serve", "--role", "worker", "--port", "8080");
        assertThat(map(at(worker, "resources.limits"))).containsEntry("nvidia.com/gpu", 1).containsEntry("memory", "64Gi");
        assertThat(map(at(worker, "resources.requests"))).containsEntry("cpu", "4").doesNotContainKey("nvidia.com/gpu");
        assertThat(list(workerPod.get("tolerations"))).containsExactly(
                Map.of("key", "nvidia.com/gpu", "operator", "Exists", "effect", "NoSchedule"));
        assertThat(workerPod).doesNotContainKeys("nodeSelector", "runtimeClassName");
        assertThat(env(worker, "WHITTLE_WORKER_LEASE")).containsEntry("value", "60s");
        assertThat(env(worker, "WHITTLE_WORKER_HEARTBEAT")).containsEntry("value", "15s");
        assertThat(env(worker, "WHITTLE_WORKER_SHUTDOWNGRACE")).containsEntry("value", "30s");
        assertThat(env(worker, "WHITTLE_WORKER_ID")).containsEntry("value", "$(POD_NAME)");
        assertThat(envNames(worker).indexOf("POD_NAME")).isLessThan(envNames(worker).indexOf("WHITTLE_WORKER_ID"));
        assertThat((String) env(worker, "JAVA_TOOL_OPTIONS").get("value")).contains("-XX:MaxRAMPercentage=40");
        // the grace period outlasts a lease renewal and the finish-or-release of running jobs
        int grace = (Integer) workerPod.get("terminationGracePeriodSeconds");
        assertThat(grace).isEqualTo(90).isGreaterThan(15).isGreaterThanOrEqualTo(30 + 10 + 10);

        for (Map<String, Object> pod : List.of(apiPod, workerPod)) {
            Map<String, Object> c = container(pod);
            assertThat(at(c, "startupProbe.httpGet.path")).isEqualTo("/actuator/health/liveness");
            assertThat(at(c, "livenessProbe.httpGet.path")).isEqualTo("/actuator/health/liveness");
            assertThat(at(c, "readinessProbe.httpGet.path")).isEqualTo("/actuator/health/readiness");
            assertThat(at(c, "readinessProbe.httpGet.port")).isEqualTo("http");
            assertThat(list(c.get("ports"))).containsExactly(Map.of("name", "http", "containerPort", 8080, "protocol", "TCP"));
            // PostgreSQL from the Secret, storage on the volume
            assertSecretRef(c, "SPRING_DATASOURCE_URL", "whittle-db", "url");
            assertSecretRef(c, "SPRING_DATASOURCE_USERNAME", "whittle-db", "username");
            assertSecretRef(c, "SPRING_DATASOURCE_PASSWORD", "whittle-db", "password");
            assertThat(env(c, "WHITTLE_STORAGE_MODELROOTS")).containsEntry("value", "/data/models");
            assertThat(env(c, "WHITTLE_STORAGE_OUTPUTROOT")).containsEntry("value", "/data/outputs");
            assertThat(envNames(c)).doesNotContain("WHITTLE_SECURITY_APIKEYHASHESFILE");
            // non-root, read-only root file system, writable /tmp for the native libraries
            assertThat(map(pod.get("securityContext"))).containsEntry("runAsNonRoot", true).containsEntry("runAsUser", 10001);
            assertThat(map(c.get("securityContext"))).containsEntry("readOnlyRootFilesystem", true)
                    .containsEntry("allowPrivilegeEscalation", false);
            assertThat(list(c.get("volumeMounts"))).contains(Map.of("name", "tmp", "mountPath", "/tmp"),
                    Map.of("name", "data", "mountPath", "/data"));
            assertThat(list(pod.get("volumes"))).contains(Map.of("name", "tmp", "emptyDir", Map.of("sizeLimit", "4Gi")),
                    Map.of("name", "data", "persistentVolumeClaim", Map.of("claimName", FULLNAME + "-data")));
            assertThat(map(c.get("resources"))).containsKeys("requests", "limits");
            // the init container creates the roots on a fresh volume
            Map<String, Object> init = map(list(pod.get("initContainers")).get(0));
            assertThat(list(init.get("command"))).containsExactly("mkdir", "-p", "/data/models", "/data/outputs");
        }

        assertThat(at(m.get("Service/" + FULLNAME + "-worker"), "spec.clusterIP")).isEqualTo("None");
        assertThat(at(m.get("PersistentVolumeClaim/" + FULLNAME + "-data"), "spec.accessModes")).isEqualTo(List.of("ReadWriteMany"));
        assertThat(at(m.get("PodDisruptionBudget/" + FULLNAME + "-worker"), "spec.maxUnavailable")).isEqualTo(1);
    }

    @Test
    void theDashboardsShipAsSidecarConfigMaps() throws IOException {
        Map<String, Map<String, Object>> m = render(t -> t);
        for (Path file : DeployPaths.dashboardFiles(DashboardMetricsTest.DASHBOARDS)) {
            String name = file.getFileName().toString();
            Map<String, Object> cm = m.get("ConfigMap/" + FULLNAME + "-dashboard-" + name.replace("whittle-", "").replace(".json", ""));
            assertThat(cm).as(name).isNotNull();
            assertThat(map(at(cm, "metadata.labels"))).containsEntry("grafana_dashboard", "1");
            assertThat(map(at(cm, "metadata.annotations"))).containsEntry("grafana_folder", "Whittle");
            String shipped = (String) map(cm.get("data")).get(name);
            JsonNode json = Http.JSON.readTree(shipped);
            assertThat(json).isEqualTo(Http.JSON.readTree(Files.readString(file)));
        }
        Map<String, Map<String, Object>> custom = render(t -> t.set("dashboards.label", "dash").set("dashboards.labelValue", "whittle")
                .set("dashboards.namespace", "monitoring"));
        Map<String, Object> cm = custom.get("ConfigMap/" + FULLNAME + "-dashboard-jobs");
        assertThat(map(at(cm, "metadata.labels"))).containsEntry("dash", "whittle").doesNotContainKey("grafana_dashboard");
        assertThat(at(cm, "metadata.namespace")).isEqualTo("monitoring");
        assertThat(render(t -> t.set("dashboards.enabled", false)).keySet()).noneMatch(k -> k.startsWith("ConfigMap/"));
    }

    @Test
    void overriddenValuesReachTheManifests() {
        Map<String, Map<String, Object>> m = render(t -> t
                .set("worker.replicas", 3)
                .set("worker.gpu.count", 2)
                .set("worker.gpu.product", "NVIDIA-H100-80GB-HBM3")
                .set("worker.runtimeClassName", "nvidia")
                .set("worker.nodeSelector.pool", "gpu")
                .set("api.replicas", 4)
                .set("database.existingSecret", "pg")
                .set("database.urlKey", "jdbc-url")
                .set("apiKeys.enabled", true)
                .set("apiKeys.existingSecret", "keys")
                .set("apiKeys.protectMetrics", true)
                .set("storage.persistence.existingClaim", "models-pvc")
                .set("serviceMonitor.enabled", true)
                .set("serviceMonitor.release", "prom-stack")
                .set("serviceMonitor.interval", "15s")
                .set("ingress.enabled", true)
                .set("ingress.className", "nginx")
                .set("ingress.hosts[0].host", "whittle.corp.test")
                .set("ingress.hosts[0].paths[0].path", "/")
                .set("ingress.hosts[0].paths[0].pathType", "Prefix"));

        assertThat(at(m.get("Deployment/" + FULLNAME + "-worker"), "spec.replicas")).isEqualTo(3);
        assertThat(at(m.get("Deployment/" + FULLNAME + "-api"), "spec.replicas")).isEqualTo(4);
        Map<String, Object> workerPod = podSpec(m, FULLNAME + "-worker");
        Map<String, Object> worker = container(workerPod);
        assertThat(map(at(worker, "resources.limits"))).containsEntry("nvidia.com/gpu", 2);
        assertThat(map(workerPod.get("nodeSelector"))).containsExactlyInAnyOrderEntriesOf(
                Map.of("nvidia.com/gpu.product", "NVIDIA-H100-80GB-HBM3", "pool", "gpu"));
        assertThat(workerPod).containsEntry("runtimeClassName", "nvidia");
        // the API pods stay off the GPU nodes' selectors
        assertThat(podSpec(m, FULLNAME + "-api")).doesNotContainKeys("nodeSelector", "runtimeClassName");

        for (String deployment : List.of(FULLNAME + "-api", FULLNAME + "-worker")) {
            Map<String, Object> pod = podSpec(m, deployment);
            Map<String, Object> c = container(pod);
            assertSecretRef(c, "SPRING_DATASOURCE_URL", "pg", "jdbc-url");
            assertSecretRef(c, "SPRING_DATASOURCE_PASSWORD", "pg", "password");
            assertThat(env(c, "WHITTLE_SECURITY_APIKEYHASHESFILE")).containsEntry("value", "/etc/whittle/api-keys/api-key-hashes");
            assertThat(env(c, "WHITTLE_SECURITY_PROTECTMETRICS")).containsEntry("value", "true");
            assertThat(list(c.get("volumeMounts"))).contains(Map.of("name", "api-keys", "mountPath", "/etc/whittle/api-keys", "readOnly", true));
            assertThat(list(pod.get("volumes"))).contains(Map.of("name", "api-keys", "secret", Map.of("secretName", "keys",
                    "items", List.of(Map.of("key", "api-key-hashes", "path", "api-key-hashes")))));
            assertThat(list(pod.get("volumes"))).contains(Map.of("name", "data", "persistentVolumeClaim", Map.of("claimName", "models-pvc")));
        }
        // an existing claim and an existing key Secret: the chart creates neither
        assertThat(m.keySet()).noneMatch(k -> k.startsWith("PersistentVolumeClaim/") || k.startsWith("Secret/"));

        Map<String, Object> sm = m.get("ServiceMonitor/" + FULLNAME);
        assertThat(map(at(sm, "metadata.labels"))).containsEntry("release", "prom-stack");
        assertThat(at(sm, "metadata.namespace")).isEqualTo("ml");
        Map<String, Object> endpoint = map(list(at(sm, "spec.endpoints")).get(0));
        assertThat(endpoint).containsEntry("port", "http").containsEntry("path", "/actuator/prometheus").containsEntry("interval", "15s");
        assertThat(map(at(sm, "spec.selector.matchLabels"))).containsExactlyInAnyOrderEntriesOf(
                Map.of("app.kubernetes.io/name", "whittle", "app.kubernetes.io/instance", RELEASE));
        // the selector finds both Services (api and worker)
        for (String service : List.of(FULLNAME + "-api", FULLNAME + "-worker")) {
            assertThat(map(at(m.get("Service/" + service), "metadata.labels"))).containsAllEntriesOf(
                    map(at(sm, "spec.selector.matchLabels")));
        }

        Map<String, Object> ingress = m.get("Ingress/" + FULLNAME);
        assertThat(at(ingress, "spec.ingressClassName")).isEqualTo("nginx");
        Map<String, Object> rule = map(list(at(ingress, "spec.rules")).get(0));
        assertThat(rule).containsEntry("host", "whittle.corp.test");
        Map<String, Object> path = map(list(at(rule, "http.paths")).get(0));
        assertThat(at(path, "backend.service.name")).isEqualTo(FULLNAME + "-api");
        assertThat(at(path, "backend.service.port.name")).isEqualTo("http");
    }

    @Test
    void cpuWorkersRequestNoGpu() {
        Map<String, Map<String, Object>> m = render(t -> t.set("worker.gpu.enabled", false).set("worker.gpu.product", "NVIDIA-A100-SXM4-80GB")
                .set("worker.runtimeClassName", "nvidia").set("worker.cpuSlots", 4));
        Map<String, Object> pod = podSpec(m, FULLNAME + "-worker");
        Map<String, Object> worker = container(pod);
        assertThat(String.valueOf(worker.get("resources"))).doesNotContain("nvidia.com");
        assertThat(pod).doesNotContainKeys("nodeSelector", "tolerations", "runtimeClassName");
        assertThat(env(worker, "WHITTLE_WORKER_CPUSLOTS")).containsEntry("value", "4");
    }

    @Test
    void chartMadeSecretsForTheDatabaseAndTheKeyHashes() {
        String hash = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"; // sha256("test")
        Map<String, Map<String, Object>> m = render(t -> t.set("database.create", true)
                .set("database.url", "jdbc:postgresql://pg.db:5432/whittle").set("database.username", "whittle")
                .set("database.password", "s3cret").set("apiKeys.enabled", true).set("apiKeys.hashes[0]", hash));
        Map<String, Object> db = m.get("Secret/" + FULLNAME + "-db");
        assertThat(map(db.get("stringData"))).containsExactlyInAnyOrderEntriesOf(Map.of(
                "url", "jdbc:postgresql://pg.db:5432/whittle", "username", "whittle", "password", "s3cret"));
        Map<String, Object> keys = m.get("Secret/" + FULLNAME + "-api-keys");
        assertThat(((String) map(keys.get("stringData")).get("api-key-hashes")).lines().map(String::trim)
                .filter(l -> !l.isEmpty()).toList()).containsExactly(hash);
        Map<String, Object> api = container(podSpec(m, FULLNAME + "-api"));
        assertSecretRef(api, "SPRING_DATASOURCE_URL", FULLNAME + "-db", "url");
        // a change of a Secret rolls the pods
        Object before = at(render(t -> t).get("Deployment/" + FULLNAME + "-api"), "spec.template.metadata.annotations.checksum/secrets");
        Object after = at(m.get("Deployment/" + FULLNAME + "-api"), "spec.template.metadata.annotations.checksum/secrets");
        assertThat(after).isNotNull().isNotEqualTo(before);
    }

    @Test
    void valuesTheChartCannotRunWithAreRefusedByName() {
        assertRefused(t -> t.set("worker.terminationGracePeriodSeconds", 20),
                "worker.terminationGracePeriodSeconds (20) must be at least shutdownGraceSeconds + releaseTimeoutSeconds + 10 (50)");
        assertRefused(t -> t.set("worker.shutdownGraceSeconds", 0).set("worker.releaseTimeoutSeconds", 1)
                .set("worker.terminationGracePeriodSeconds", 12).set("worker.lease.heartbeatSeconds", 14),
                "worker.terminationGracePeriodSeconds (12) must be longer than one lease renewal (worker.lease.heartbeatSeconds 14)");
        assertRefused(t -> t.set("worker.lease.heartbeatSeconds", 60),
                "worker.lease.heartbeatSeconds (60) must be shorter than worker.lease.durationSeconds (60)");
        assertRefused(t -> t.set("apiKeys.enabled", true), "apiKeys.enabled needs apiKeys.existingSecret or apiKeys.hashes");
        assertRefused(t -> t.set("database.create", true), "database.create needs database.url");
        assertRefused(t -> t.set("database.create", true).set("database.url", "jdbc:h2:mem:x"),
                "database.url must be a PostgreSQL JDBC URL");
        assertRefused(t -> t.set("database.existingSecret", ""), "database.existingSecret (or database.create with database.url) is required");
        // the schema: types, ranges, typos
        assertRefused(t -> t.set("worker.gpu.count", 0), "count");
        assertRefused(t -> t.set("worker.gpus", 1), "gpus");
        assertRefused(t -> t.set("apiKeys.hashes[0]", "not-a-hash"), "hashes");
        assertRefused(t -> t.set("executor.mode", "ray"), "mode");
    }

    static void assertRefused(UnaryOperator<TemplateCommand> values, String message) {
        assertThatThrownBy(() -> render(values)).hasMessageContaining(message);
    }

    @Test
    void notesSayHowToSubmitAFirstJob() {
        String out = helm().install().withName(RELEASE).withNamespace("ml").dryRun().clientOnly().call().getOutput();
        assertThat(out).contains("kubectl -n ml port-forward svc/" + FULLNAME + "-api 8080:8080",
                "curl -s -X POST $WHITTLE/api/v1/jobs -H 'Content-Type: application/json'", "\"method\": \"camera-p\"",
                "kubectl -n ml create secret generic whittle-db", "WARNING: the API is open");
        String withKeys = helm().install().withName(RELEASE).withNamespace("ml").dryRun().clientOnly()
                .set("apiKeys.enabled", true).set("apiKeys.existingSecret", "keys").call().getOutput();
        assertThat(withKeys).contains("curl -s -X POST $WHITTLE/api/v1/jobs -H \"Authorization: Bearer $WHITTLE_KEY\"")
                .doesNotContain("WARNING: the API is open");
        assertThat(Objects.requireNonNull(withKeys)).contains("1 pod(s), 1 x nvidia.com/gpu each");
    }
}
