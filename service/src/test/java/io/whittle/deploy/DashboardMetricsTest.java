package io.whittle.deploy;

import static org.assertj.core.api.Assertions.assertThat;

import io.whittle.app.WhittleApplication;
import io.whittle.testing.Http;
import io.whittle.testing.ScaleMethod;
import io.whittle.testing.TestModels;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.boot.test.web.server.LocalServerPort;
import org.springframework.test.context.DynamicPropertyRegistry;
import org.springframework.test.context.DynamicPropertySource;
import org.springframework.util.FileSystemUtils;
import tools.jackson.databind.JsonNode;

/**
 * No dead panels: runs real jobs through the whole service, scrapes {@code /actuator/prometheus}, and fails when a
 * metric that a Grafana dashboard (panel query or variable query) reads is not exported. The DCGM exporter's metrics
 * ({@code DCGM_*}) come from another process and are exempt.
 *
 * <p>The jobs: a {@code test-scale} compression (every job, kernel and memory meter) and a
 * {@code benchmark} job (the real method, on tiny shapes) that puts its
 * {@code benchmark_results} entry into its report, which the worker publishes as the {@code whittle.benchmark.*}
 * gauges, the same path a real benchmark job takes. One {@link System#gc()} makes sure the JVM's GC pause timer
 * exists.
 */
@SpringBootTest(classes = WhittleApplication.class, webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT)
class DashboardMetricsTest {

    /** The dashboards in the repository (the chart ships the same files through a link). */
    static final Path DASHBOARDS = DeployPaths.repoRoot().resolve("docker/grafana/dashboards");
    static final Path DATA;

    static {
        try {
            DATA = Files.createTempDirectory(Path.of(System.getProperty("java.io.tmpdir")), "whittle-dash-");
        } catch (IOException e) {
            throw new ExceptionInInitializerError(e);
        }
    }

    @DynamicPropertySource
    static void properties(DynamicPropertyRegistry r) {
        r.add("whittle.storage.data-dir", DATA::toString);
        r.add("whittle.worker.poll-interval", () -> "100ms");
    }

    @AfterAll
    static void cleanUp() {
        FileSystemUtils.deleteRecursively(DATA.toFile());
    }

    @LocalServerPort
    int port;

    static String scrape;

    @BeforeAll
    static void prepare() throws IOException {
        Path models = Files.createDirectories(DATA.resolve("models"));
        TestModels.tinyMoe(models.resolve("tiny"), 2, 42);
        TestModels.tokens(models.resolve("calibration.json"), 2, 16, 128, 7);
    }

    synchronized String scrape() {
        if (scrape == null) {
            Http http = new Http(port, null);
            String scale = submit(http, "{\"method\": \"" + ScaleMethod.NAME
                    + "\", \"model\": \"tiny\", \"calibration\": \"calibration.json\", \"params\": {\"factor\": 0.5}}");
            // the real benchmark method: its report's benchmark_results become the whittle.benchmark.* gauges
            String bench = submit(http, "{\"method\": \"benchmark\", \"model\": \"tiny\", "
                    + "\"params\": {\"tokens\": 32, \"repeats\": 1, \"layer_forward\": false}}");
            for (String id : List.of(scale, bench)) {
                JsonNode done = http.await("/api/v1/jobs/" + id, Duration.ofSeconds(60),
                        j -> j.path("state").stringValue().matches("SUCCEEDED|FAILED|CANCELLED"));
                assertThat(done.path("state").stringValue()).as(done.toString()).isEqualTo("SUCCEEDED");
            }
            // the GC pause timer appears once a collection's notification has been processed, which happens on
            // another thread after System.gc() returns: scrape until it is there (bounded)
            long deadline = System.nanoTime() + Duration.ofSeconds(20).toNanos();
            Http.Response r;
            do {
                System.gc();
                r = http.get("/actuator/prometheus");
                assertThat(r.status()).isEqualTo(200);
            } while (!r.body().contains("jvm_gc_pause_seconds_sum") && System.nanoTime() < deadline && pause());
            scrape = r.body();
        }
        return scrape;
    }

    private static boolean pause() {
        try {
            Thread.sleep(200);
            return true;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return false;
        }
    }

    private static String submit(Http http, String body) {
        Http.Response r = http.post("/api/v1/jobs", body);
        assertThat(r.status()).as(r.body()).isEqualTo(202);
        return r.json().path("id").stringValue();
    }

    /** Series names in a Prometheus text exposition. */
    static Set<String> seriesNames(String exposition) {
        Set<String> names = new HashSet<>();
        exposition.lines().filter(l -> !l.isBlank() && !l.startsWith("#")).forEach(l -> {
            int end = 0;
            while (end < l.length() && l.charAt(end) != '{' && l.charAt(end) != ' ') {
                end++;
            }
            names.add(l.substring(0, end));
        });
        return names;
    }

    /** Every metric each dashboard reads, by "dashboard / panel" (variables as "dashboard / $name"). */
    static Map<String, Set<String>> queriedMetrics() throws IOException {
        Map<String, Set<String>> out = new LinkedHashMap<>();
        for (Path file : DeployPaths.dashboardFiles(DASHBOARDS)) {
            JsonNode dashboard = Http.JSON.readTree(file.toFile());
            String title = dashboard.path("title").stringValue();
            for (JsonNode panel : panels(dashboard)) {
                Set<String> names = new TreeSet<>();
                for (JsonNode target : panel.path("targets")) {
                    names.addAll(PromQlNames.ofExpression(target.path("expr").stringValue()));
                }
                out.put(title + " / " + panel.path("title").stringValue(), names);
            }
            for (JsonNode variable : dashboard.path("templating").path("list")) {
                if (variable.path("type").stringValue().equals("query")) {
                    JsonNode q = variable.path("query");
                    String query = q.isString() ? q.stringValue() : q.path("query").stringValue();
                    out.put(title + " / $" + variable.path("name").stringValue(), PromQlNames.ofVariableQuery(query));
                }
            }
        }
        return out;
    }

    /** Every non-row panel, including panels nested in collapsed rows. */
    static List<JsonNode> panels(JsonNode dashboard) {
        List<JsonNode> out = new ArrayList<>();
        for (JsonNode p : dashboard.path("panels")) {
            if (p.path("type").stringValue().equals("row")) {
                p.path("panels").forEach(out::add);
            } else {
                out.add(p);
            }
        }
        return out;
    }

    @Test
    void everyMetricADashboardQueriesIsExported() throws IOException {
        Set<String> exported = seriesNames(scrape());
        Map<String, Set<String>> queried = queriedMetrics();
        List<String> dead = new ArrayList<>();
        Set<String> checked = new TreeSet<>();
        queried.forEach((where, names) -> names.stream().filter(n -> !n.startsWith("DCGM_")).forEach(n -> {
            checked.add(n);
            if (!exported.contains(n)) {
                dead.add(where + ": " + n);
            }
        }));
        assertThat(dead).as("metrics that dashboards query but the service does not export").isEmpty();
        // the extraction found the meters this test exists for (it cannot pass by reading nothing)
        assertThat(checked).contains("whittle_jobs_completed_total", "whittle_job_duration_seconds_bucket",
                "whittle_job_stage_duration_seconds_bucket", "whittle_jobs_active", "whittle_kernel_duration_seconds_bucket",
                "whittle_kernel_flops_total", "whittle_kernel_bytes_total", "whittle_device_memory_used_bytes",
                "whittle_job_device_memory_peak_bytes_max", "whittle_benchmark_throughput", "whittle_benchmark_efficiency",
                "jvm_memory_used_bytes", "jvm_gc_pause_seconds_sum");
    }

    @Test
    void everyPanelQueriesSomethingAndTheGpuPanelsReadDcgm() throws IOException {
        Map<String, Set<String>> queried = queriedMetrics();
        queried.forEach((where, names) -> assertThat(names).as(where + " reads no metric").isNotEmpty());
        Set<String> dcgm = new TreeSet<>();
        queried.values().forEach(names -> names.stream().filter(n -> n.startsWith("DCGM_")).forEach(dcgm::add));
        assertThat(dcgm).contains("DCGM_FI_DEV_GPU_UTIL", "DCGM_FI_DEV_FB_USED", "DCGM_FI_DEV_POWER_USAGE");
    }

    @Test
    void theBenchmarkResultAndTheKernelWorkArriveWithTheirValues() {
        String text = scrape();
        String copy = text.lines().filter(l -> l.startsWith("whittle_benchmark_throughput{") && l.contains("op=\"copy\""))
                .findFirst().orElseThrow(() -> new AssertionError("no benchmark gauge for the copy ceiling:\n" + text));
        assertThat(Double.parseDouble(copy.substring(copy.lastIndexOf(' ') + 1))).isPositive();
        assertThat(text).contains("whittle_benchmark_efficiency{").contains("op=\"matmul fp32\"");
        assertThat(value(text, "whittle_kernel_flops_total{device=\"cpu\",kernel=\"linear\"}")).isPositive();
        assertThat(value(text, "whittle_kernel_bytes_total{device=\"cpu\",kernel=\"linear\"}")).isPositive();
        assertThat(text).contains("whittle_job_stage_duration_seconds_bucket{method=\"test-scale\",stage=\"method\",le=");
        // element-wise kernels move bytes but report no FLOPs, so they have no FLOP series
        assertThat(text).contains("whittle_kernel_bytes_total{device=\"cpu\",kernel=\"add\"}")
                .doesNotContain("whittle_kernel_flops_total{device=\"cpu\",kernel=\"add\"}");
    }

    @Test
    void dashboardsAreWellFormed() throws IOException {
        Set<String> uids = new HashSet<>();
        for (Path file : DeployPaths.dashboardFiles(DASHBOARDS)) {
            JsonNode d = Http.JSON.readTree(file.toFile());
            assertThat(uids.add(d.path("uid").stringValue())).as("unique uid in " + file).isTrue();
            Set<Integer> ids = new HashSet<>();
            for (JsonNode p : d.path("panels")) {
                assertThat(ids.add(p.path("id").asInt())).as("unique panel id " + p.path("id") + " in " + file).isTrue();
                JsonNode g = p.path("gridPos");
                assertThat(g.path("x").asInt() + g.path("w").asInt()).as(file + " " + p.path("title")).isLessThanOrEqualTo(24);
                if (!p.path("type").stringValue().equals("row")) {
                    assertThat(p.path("datasource").path("uid").stringValue()).as(file + " " + p.path("title"))
                            .isEqualTo("${datasource}");
                    assertThat(p.path("targets").size()).as(file + " " + p.path("title")).isPositive();
                }
            }
        }
        assertThat(uids).containsExactlyInAnyOrder("whittle-jobs", "whittle-compute", "whittle-jvm");
    }

    private static double value(String text, String series) {
        try (Stream<String> lines = text.lines()) {
            return lines.filter(l -> l.startsWith(series + " ")).map(l -> Double.parseDouble(l.substring(series.length() + 1).trim()))
                    .findFirst().orElseThrow(() -> new AssertionError("no series " + series));
        }
    }
}
