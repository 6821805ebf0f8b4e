package io.whittle.app;

import static org.assertj.core.api.Assertions.assertThat;

import io.whittle.testing.Http;
import io.whittle.testing.ScaleMethod;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.net.http.HttpRequest;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HexFormat;
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
 * API keys (plain and from a file of hashes), open health probes, keyed metrics, and request body limits, over real
 * HTTP.
 */
@SpringBootTest(classes = WhittleApplication.class, webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT)
class SecurityTest {

    static final Path DATA;
    static final Path HASHES;

    static {
        try {
            DATA = Files.createTempDirectory(Path.of(System.getProperty("java.io.tmpdir")), "whittle-security-");
            HASHES = DATA.resolve("api-key-hashes");
            byte[] h = ApiKeyFilter.sha256("key-from-secret");
            Files.writeString(HASHES, "# keys of the CI robots\n\nsha256:" + HexFormat.of().formatHex(h) + "\n");
        } catch (IOException e) {
            throw new ExceptionInInitializerError(e);
        }
    }

    @DynamicPropertySource
    static void properties(DynamicPropertyRegistry r) {
        r.add("whittle.storage.data-dir", DATA::toString);
        r.add("whittle.role", () -> "api");
        r.add("whittle.security.api-keys", () -> "first-key, second-key");
        r.add("whittle.security.api-key-hashes-file", HASHES::toString);
        r.add("whittle.security.protect-metrics", () -> "true");
        r.add("whittle.api.max-body-size", () -> "2KB");
    }

    @AfterAll
    static void cleanUp() {
        FileSystemUtils.deleteRecursively(DATA.toFile());
    }

    @LocalServerPort
    int port;

    static void assertUnauthorized(Http.Response r) {
        assertThat(r.status()).as(r.body()).isEqualTo(401);
        assertThat(r.contentType()).startsWith("application/problem+json");
        assertThat(r.json().path("code").stringValue()).isEqualTo("UNAUTHORIZED");
        assertThat(r.header("WWW-Authenticate")).startsWith("Bearer");
    }

    @Test
    void everyApiCallNeedsAValidKey() {
        for (String path : new String[] {"/api/v1/jobs", "/api/v1/methods", "/api/v1/devices", "/api/v1/jobs/x"}) {
            assertUnauthorized(new Http(port, null).get(path));
            assertUnauthorized(new Http(port, "wrong-key").get(path));
            assertUnauthorized(new Http(port, "first-keyX").get(path));
        }
        assertUnauthorized(new Http(port, null).post("/api/v1/jobs", "{}"));
        assertUnauthorized(new Http(port, null).delete("/api/v1/jobs/x"));
        Http basic = new Http(port, null);
        assertUnauthorized(basic.send(basic.request("/api/v1/methods").header("Authorization", "Basic Zmlyc3Qta2V5").GET().build()));

        assertThat(new Http(port, "first-key").get("/api/v1/methods").status()).isEqualTo(200);
        assertThat(new Http(port, "second-key").get("/api/v1/jobs").status()).isEqualTo(200);
        assertThat(new Http(port, "key-from-secret").get("/api/v1/devices").status()).isEqualTo(200);
        assertThat(new Http(port, "first-key").get("/api/v1/jobs/x").json().path("code").stringValue()).isEqualTo("JOB_NOT_FOUND");
    }

    @Test
    void healthStaysOpenAndMetricsAreKeyedWhenConfigured() {
        Http anonymous = new Http(port, null);
        assertThat(anonymous.get("/actuator/health").status()).isEqualTo(200);
        assertThat(anonymous.get("/actuator/health/liveness").status()).isEqualTo(200);
        assertThat(anonymous.get("/actuator/health/readiness").status()).isEqualTo(200);
        assertUnauthorized(anonymous.get("/actuator/prometheus"));
        Http.Response metrics = new Http(port, "first-key").get("/actuator/prometheus");
        assertThat(metrics.status()).isEqualTo(200);
        assertThat(metrics.body()).contains("whittle_jobs_active{state=\"queued\"}");
    }

    @Test
    void oversizeBodiesAreRefused() {
        Http http = new Http(port, "first-key");
        String big = "{\"method\": \"" + ScaleMethod.NAME + "\", \"model\": \"" + "m".repeat(4000) + "\"}";
        Http.Response declared = http.post("/api/v1/jobs", big);
        assertThat(declared.status()).isEqualTo(413);
        assertThat(declared.contentType()).startsWith("application/problem+json");
        assertThat(declared.json().path("code").stringValue()).isEqualTo("PAYLOAD_TOO_LARGE");
        // a chunked body (no Content-Length) is cut off while it is read
        byte[] bytes = big.getBytes(StandardCharsets.UTF_8);
        Http.Response chunked = http.send(http.request("/api/v1/jobs").header("Content-Type", "application/json")
                .POST(HttpRequest.BodyPublishers.ofInputStream(() -> new ByteArrayInputStream(bytes))).build());
        assertThat(chunked.status()).as(chunked.body()).isEqualTo(413);
        assertThat(chunked.json().path("code").stringValue()).isEqualTo("PAYLOAD_TOO_LARGE");
        // under the limit the request reaches validation (the model does not exist)
        Http.Response small = http.post("/api/v1/jobs", "{\"method\": \"" + ScaleMethod.NAME + "\", \"model\": \"nope\"}");
        assertThat(small.status()).isEqualTo(400);
        JsonNode problem = small.json();
        assertThat(problem.path("code").stringValue()).isEqualTo("VALIDATION_FAILED");
        assertThat(problem.path("errors").path(0).path("field").stringValue()).isEqualTo("model");
    }

    @Autowired
    ApplicationContext context;

    @Test
    void theApiRoleServesTheApiAndRunsNoWorkers() {
        assertThat(context.getBeansOfType(JobsConfiguration.WorkerLifecycle.class)).isEmpty();
        assertThat(new Http(port, "first-key").get("/api/v1/jobs").status()).isEqualTo(200);
    }
}
