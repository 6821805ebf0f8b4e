package io.whittle.deploy;

import static io.whittle.deploy.HelmChartTest.at;
import static io.whittle.deploy.HelmChartTest.list;
import static io.whittle.deploy.HelmChartTest.map;
import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.yaml.snakeyaml.LoaderOptions;
import org.yaml.snakeyaml.Yaml;
import org.yaml.snakeyaml.constructor.AbstractConstruct;
import org.yaml.snakeyaml.constructor.SafeConstructor;
import org.yaml.snakeyaml.nodes.Node;
import org.yaml.snakeyaml.nodes.Tag;

/**
 * What can be checked of the image and the compose stack without a Docker engine (there is none on the build
 * machines): the Dockerfile copies what the repository has, in Spring Boot's layer order, onto a CUDA 12 runtime as a
 * non-root user with a health check; the compose services run the roles they are named after against the
 * PostgreSQL service, the worker reserves a GPU (and the CPU override drops it), and Prometheus and Grafana find what
 * they are pointed at.
 */
class DockerFilesTest {

    static final Path ROOT = DeployPaths.repoRoot();
    static final Path DOCKER = ROOT.resolve("docker");

    /** Compose's {@code !reset} tag: marks the value, as compose drops the base file's value there. */
    record Reset(Object value) {
    }

    static Map<String, Object> yaml(Path file) throws IOException {
        SafeConstructor constructor = new SafeConstructor(new LoaderOptions()) {
            {
                yamlConstructors.put(new Tag("!reset"), new AbstractConstruct() {
                    @Override
                    public Object construct(Node node) {
                        return new Reset(node.getNodeId().name());
                    }
                });
            }
        };
        return map(new Yaml(constructor).load(Files.readString(file)));
    }

    static List<String> dockerfile() throws IOException {
        // join continuation lines, drop comments
        String text = Files.readString(DOCKER.resolve("Dockerfile")).replaceAll("\\\\\\n", " ");
        return text.lines().map(String::trim).filter(l -> !l.isEmpty() && !l.startsWith("#")).toList();
    }

    @Test
    void theImageIsTheLayeredJarOnACuda12RuntimeAsANonRootUser() throws IOException {
        List<String> lines = dockerfile();
        String all = String.join("\n", lines);
        assertThat(all).contains("ARG CUDA_VERSION=12.");
        List<String> froms = lines.stream().filter(l -> l.startsWith("FROM ")).toList();
        assertThat(froms.get(froms.size() - 1)).isEqualTo("FROM nvidia/cuda:${CUDA_VERSION}-runtime-${UBUNTU}");
        assertThat(froms).anyMatch(f -> f.startsWith("FROM nvidia/cuda:${CUDA_VERSION}-devel-"))
                .anyMatch(f -> f.startsWith("FROM maven:") && f.contains("temurin-17"))
                .anyMatch(f -> f.startsWith("FROM eclipse-temurin:17-jre"));
        assertThat(all).contains("WHITTLE_CUDA_ARCHS=\"sm_80 sm_86 sm_89 sm_90\"");

        // Spring Boot's layers, least changing first, exactly as `extract --layers --launcher` names them
        List<String> layers = new ArrayList<>();
        Matcher m = Pattern.compile("COPY --from=build /extracted/([a-z-]+)/ \\./").matcher(all);
        while (m.find()) {
            layers.add(m.group(1));
        }
        assertThat(layers).containsExactly("dependencies", "spring-boot-loader", "snapshot-dependencies", "application");
        assertThat(all).contains("extract --layers --launcher --destination /extracted")
                .contains("ENTRYPOINT [\"java\", \"org.springframework.boot.loader.launch.JarLauncher\"]")
                .contains("CMD [\"serve\"]");

        // non-root, a writable tmp for the natives, offline tokenizers, health on the liveness group
        String user = lines.stream().filter(l -> l.startsWith("USER ")).reduce((a, b) -> b).orElseThrow();
        assertThat(user).isEqualTo("USER 10001:10001");
        assertThat(all).contains("-Djava.io.tmpdir=/tmp", "-Dai.djl.offline=true", "WHITTLE_CUDA_CUBIN_DIR=/opt/whittle/cubins");
        String health = lines.stream().filter(l -> l.startsWith("HEALTHCHECK ")).findFirst().orElseThrow();
        assertThat(health).contains("/actuator/health/liveness");

        // every path copied from the build context exists and is not excluded by .dockerignore
        List<String> ignored = Files.readAllLines(ROOT.resolve(".dockerignore")).stream().map(String::trim)
                .filter(l -> !l.isEmpty() && !l.startsWith("#")).toList();
        Matcher copy = Pattern.compile("(?m)^COPY (?!--from)(\\S+) ").matcher(all);
        int copies = 0;
        while (copy.find()) {
            String source = copy.group(1);
            assertThat(ROOT.resolve(source)).as(source).exists();
            assertThat(ignored).as(source + " is excluded from the build context")
                    .noneMatch(p -> !p.startsWith("**") && source.startsWith(p.replaceAll("/$", "")));
            assertThat(source).doesNotContain("src/test");
            copies++;
        }
        assertThat(copies).isGreaterThanOrEqualTo(6);
    }

    @Test
    void composeRunsApiAndGpuWorkerAgainstPostgresWithPrometheusAndGrafana() throws IOException {
        Map<String, Object> compose = yaml(DOCKER.resolve("compose.yaml"));
        Map<String, Object> services = map(compose.get("services"));
        assertThat(services).containsKeys("postgres", "seed", "api", "worker", "prometheus", "grafana", "dcgm-exporter");

        assertThat(list(at(compose, "services.api.command"))).containsExactly("serve", "--role", "api");
        assertThat(list(at(compose, "services.worker.command"))).containsExactly("serve", "--role", "worker");
        assertThat(list(at(compose, "services.seed.command"))).containsExactly("demo", "--prepare-only", "--data-dir", "/data");

        Map<String, Object> gpu = map(list(at(compose, "services.worker.deploy.resources.reservations.devices")).get(0));
        assertThat(gpu).containsEntry("driver", "nvidia").containsEntry("count", 1).containsEntry("capabilities", List.of("gpu"));
        assertThat(at(compose, "services.api.deploy")).isNull();
        // longer than whittle.worker.shutdown-grace + release-timeout (30 s + 10 s)
        assertThat((String) at(compose, "services.worker.stop_grace_period")).matches("([5-9][0-9]|[1-9][0-9]{2,})s");

        String db = (String) at(compose, "services.postgres.environment.POSTGRES_DB");
        for (String role : List.of("api", "worker")) {
            Map<String, Object> env = map(at(compose, "services." + role + ".environment"));
            assertThat(env).containsEntry("SPRING_DATASOURCE_URL", "jdbc:postgresql://postgres:5432/" + db);
            assertThat(map(at(compose, "services." + role + ".depends_on"))).containsKeys("postgres", "seed");
        }
        for (String role : List.of("seed", "api", "worker")) {
            assertThat(list(at(compose, "services." + role + ".volumes"))).contains("whittle-data:/data");
            assertThat(at(compose, "services." + role + ".build.dockerfile")).isEqualTo("docker/Dockerfile");
            assertThat(DOCKER.resolve((String) at(compose, "services." + role + ".build.context")).resolve("docker/Dockerfile")).isRegularFile();
        }
        assertThat(list(at(compose, "services.api.ports"))).containsExactly("${WHITTLE_PORT:-8080}:8080");

        // bind mounts point at files in docker/
        for (String service : List.of("prometheus", "grafana")) {
            for (Object v : list(at(compose, "services." + service + ".volumes"))) {
                String source = ((String) v).split(":")[0];
                if (source.startsWith("./")) {
                    assertThat(DOCKER.resolve(source)).as(service + " mounts " + source).exists();
                }
            }
        }

        // the CPU override drops the GPU reservation
        Map<String, Object> cpu = yaml(DOCKER.resolve("compose.cpu.yaml"));
        assertThat(at(cpu, "services.worker.deploy.resources.reservations.devices")).isEqualTo(new Reset("sequence"));
    }

    @Test
    void prometheusScrapesTheWhittleServicesAndGrafanaFindsItsDashboards() throws IOException {
        Map<String, Object> compose = yaml(DOCKER.resolve("compose.yaml"));
        Map<String, Object> prometheus = yaml(DOCKER.resolve("prometheus.yml"));
        Map<String, Object> whittle = map(list(prometheus.get("scrape_configs")).get(0));
        assertThat(whittle).containsEntry("job_name", "whittle").containsEntry("metrics_path", "/actuator/prometheus");
        Map<String, Object> sd = map(list(whittle.get("dns_sd_configs")).get(0));
        assertThat(list(sd.get("names"))).containsExactly("api", "worker");
        assertThat(sd).containsEntry("port", 8080);
        assertThat(map(compose.get("services"))).containsKeys("api", "worker", "dcgm-exporter");
        Map<String, Object> dcgm = map(list(prometheus.get("scrape_configs")).get(1));
        assertThat(list(map(list(dcgm.get("dns_sd_configs")).get(0)).get("names"))).containsExactly("dcgm-exporter");

        Map<String, Object> datasource = map(list(yaml(DOCKER.resolve("grafana/provisioning/datasources/prometheus.yaml"))
                .get("datasources")).get(0));
        assertThat(datasource).containsEntry("type", "prometheus").containsEntry("url", "http://prometheus:9090");
        Map<String, Object> provider = map(list(yaml(DOCKER.resolve("grafana/provisioning/dashboards/whittle.yaml"))
                .get("providers")).get(0));
        String path = (String) at(provider, "options.path");
        assertThat(list(at(compose, "services.grafana.volumes"))).contains("./grafana/dashboards:" + path + ":ro");
        assertThat((String) at(compose, "services.grafana.environment.GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"))
                .startsWith(path + "/").satisfies(home -> assertThat(DOCKER.resolve("grafana/dashboards")
                        .resolve(Path.of(home).getFileName())).isRegularFile());
    }
}
