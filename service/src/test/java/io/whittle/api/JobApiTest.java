package io.whittle.api;

import static org.assertj.core.api.Assertions.assertThat;

import io.whittle.app.WhittleApplication;
import io.whittle.model.Checkpoint;
import io.whittle.model.ModelSpec;
import io.whittle.testing.Http;
import io.whittle.testing.ScaleMethod;
import io.whittle.testing.TestModels;
import io.whittle.tensor.FloatTensor;
import io.whittle.tensor.HostAllocator;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.UUID;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.springframework.boot.test.context.SpringBootTest;
import org.springframework.boot.test.web.server.LocalServerPort;
import org.springframework.test.context.DynamicPropertyRegistry;
import org.springframework.test.context.DynamicPropertySource;
import org.springframework.util.FileSystemUtils;
import tools.jackson.databind.JsonNode;

/**
 * The REST API over real HTTP against the whole service (H2, one CPU worker slot, short leases): every endpoint,
 * validation errors as problem documents, path escapes, idempotency, cancellation, server-sent events, OpenAPI and
 * the metrics after jobs ran.
 */
@SpringBootTest(classes = WhittleApplication.class, webEnvironment = SpringBootTest.WebEnvironment.RANDOM_PORT)
class JobApiTest {

    static final Duration WAIT = Duration.ofSeconds(60);
    static final Path DATA;
    static final Path MODELS;
    static final Path OUTSIDE;

    static {
        try {
            DATA = Files.createTempDirectory(Path.of(System.getProperty("java.io.tmpdir")), "whittle-api-");
            MODELS = Files.createDirectories(DATA.resolve("models"));
            OUTSIDE = Files.createDirectories(DATA.resolve("outside"));
        } catch (IOException e) {
            throw new ExceptionInInitializerError(e);
        }
    }

    @DynamicPropertySource
    static void properties(DynamicPropertyRegistry r) {
        r.add("whittle.storage.data-dir", DATA::toString);
        r.add("whittle.worker.lease", () -> "2s");
        r.add("whittle.worker.heartbeat", () -> "500ms");
        r.add("whittle.worker.poll-interval", () -> "100ms");
        r.add("whittle.worker.progress-interval", () -> "50ms");
        r.add("whittle.worker.shutdown-grace", () -> "1s");
        r.add("whittle.api.events-poll-interval", () -> "50ms");
    }

    @AfterAll
    static void cleanUp() {
        FileSystemUtils.deleteRecursively(DATA.toFile());
    }

    @LocalServerPort
    int port;
    Http http;
    static Path model;
    static Path calibration;

    @BeforeEach
    void setUp() throws IOException {
        http = new Http(port, null);
        synchronized (JobApiTest.class) {
            if (model == null) {
                model = MODELS.resolve("tiny");
                TestModels.tinyMoe(model, 4, 42);
                calibration = TestModels.tokens(MODELS.resolve("calibration.json"), 2, 16, 128, 7);
                TestModels.tinyMoe(OUTSIDE.resolve("model"), 2, 1);
            }
        }
    }

    static String job(String params, String extra) {
        return "{\"method\": \"" + ScaleMethod.NAME + "\", \"model\": \"" + model + "\", \"calibration\": \"" + calibration
                + "\", \"params\": " + params + extra + "}";
    }

    JsonNode awaitFinal(String id) {
        return http.await("/api/v1/jobs/" + id, WAIT, j -> j.path("state").stringValue().matches("SUCCEEDED|FAILED|CANCELLED"));
    }

    static void assertProblem(Http.Response r, int status, String code) {
        assertThat(r.status()).as(r.body()).isEqualTo(status);
        assertThat(r.contentType()).startsWith("application/problem+json");
        JsonNode p = r.json();
        assertThat(p.path("code").stringValue()).as(r.body()).isEqualTo(code);
        assertThat(p.path("status").asInt()).isEqualTo(status);
        assertThat(p.path("title").isString()).isTrue();
        assertThat(p.path("detail").isString()).isTrue();
    }

    static String field(Http.Response r) {
        return r.json().path("errors").path(0).path("field").stringValue();
    }

    @Test
    void aSubmittedJobRunsAndShowsItsResultAndReport() throws IOException {
        Map<Path, String> inputsBefore = digests(MODELS);
        Http.Response submitted = http.post("/api/v1/jobs", job("{\"factor\": 0.5}", ""));
        assertThat(submitted.status()).as(submitted.body()).isEqualTo(202);
        JsonNode body = submitted.json();
        String id = body.path("id").stringValue();
        assertThat(submitted.header("Location")).isEqualTo("/api/v1/jobs/" + id);
        assertThat(body.path("method").stringValue()).isEqualTo(ScaleMethod.NAME);
        assertThat(body.path("state").stringValue()).isIn("QUEUED", "RUNNING");
        assertThat(body.path("backend").stringValue()).isEqualTo("auto");
        // the validated parameters, defaults filled in
        assertThat(body.path("params").path("factor").asDouble()).isEqualTo(0.5);
        assertThat(body.path("params").path("sleep_ms").asInt()).isZero();
        assertThat(body.path("params").path("fail_at_layer").asInt()).isEqualTo(-1);
        assertThat(body.has("error")).isFalse();

        JsonNode done = awaitFinal(id);
        assertThat(done.path("state").stringValue()).as(done.toString()).isEqualTo("SUCCEEDED");
        assertThat(done.path("attempt").asInt()).isEqualTo(1);
        assertThat(done.path("device").stringValue()).isEqualTo("cpu");
        assertThat(done.path("executor").stringValue()).isEqualTo("local");
        assertThat(done.has("kubernetes")).as("no Kubernetes Job").isFalse();
        assertThat(done.has("resources")).isFalse();
        Instant created = Instant.parse(done.path("createdAt").stringValue());
        Instant started = Instant.parse(done.path("startedAt").stringValue());
        Instant finished = Instant.parse(done.path("finishedAt").stringValue());
        assertThat(created).isBeforeOrEqualTo(started);
        assertThat(started).isBeforeOrEqualTo(finished);
        JsonNode progress = done.path("progress");
        assertThat(progress.path("fraction").asDouble()).isEqualTo(1.0);
        assertThat(progress.path("layers").asInt()).isEqualTo(4);
        assertThat(done.has("error")).isFalse();
        Path output = Path.of(done.path("result").path("output").stringValue());
        Path reportFile = Path.of(done.path("result").path("report").stringValue());
        assertThat(output).startsWith(DATA.resolve("outputs").toRealPath()).isDirectory();
        assertThat(output.getFileName().toString()).isEqualTo(id); // no output given: <output-root>/<id>
        assertThat(reportFile).isEqualTo(output.resolve("report.json")).isRegularFile();

        Http.Response report = http.get("/api/v1/jobs/" + id + "/report");
        assertThat(report.status()).isEqualTo(200);
        assertThat(report.contentType()).startsWith("application/json");
        JsonNode r = report.json();
        assertThat(r).isEqualTo(Http.JSON.readTree(Files.readString(reportFile)));
        assertThat(r.path("method").stringValue()).isEqualTo(ScaleMethod.NAME);
        assertThat(r.path("result").path("scaled_tensors").asInt()).isEqualTo(4 * 4); // 4 layers x 4 experts
        assertThat(r.path("timings").path("total").asDouble()).isPositive();
        assertThat(r.path("timings").path("method").asDouble()).isPositive();

        assertThat(digests(MODELS)).as("the inputs, after the job").isEqualTo(inputsBefore);

        // the compressed model: every expert down_proj halved exactly (0.5 is exact in bf16), everything else unchanged
        ModelSpec spec = io.whittle.model.ModelSpecs.load(model);
        Set<String> downs = new HashSet<>();
        for (int l = 0; l < spec.numLayers(); l++) {
            downs.addAll(ScaleMethod.downProjections(spec.layer(l)));
        }
        try (Checkpoint in = Checkpoint.open(model); Checkpoint out = Checkpoint.open(output);
             HostAllocator alloc = HostAllocator.root().newChild("check", Long.MAX_VALUE)) {
            assertThat(out.tensorNames()).isEqualTo(in.tensorNames());
            for (String name : in.tensorNames()) {
                try (FloatTensor a = in.readFloat(name, alloc); FloatTensor b = out.readFloat(name, alloc)) {
                    float[] x = a.toArray();
                    float[] y = b.toArray();
                    float f = downs.contains(name) ? 0.5f : 1.0f;
                    for (int i = 0; i < x.length; i++) {
                        assertThat(y[i]).as("%s[%d]", name, i).isEqualTo(x[i] * f);
                    }
                }
            }
        }
    }

    @Test
    void aFailingJobReportsItsError() {
        String id = http.post("/api/v1/jobs", job("{\"fail_at_layer\": 1}", "")).json().path("id").stringValue();
        JsonNode done = awaitFinal(id);
        assertThat(done.path("state").stringValue()).isEqualTo("FAILED");
        assertThat(done.path("error").path("code").stringValue()).isEqualTo("METHOD_FAILED");
        assertThat(done.path("error").path("message").stringValue()).contains("injected failure at layer 1");
        assertThat(done.has("result")).isFalse();
        assertThat(DATA.resolve("outputs").resolve(id)).doesNotExist();
        assertProblem(http.get("/api/v1/jobs/" + id + "/report"), 409, "REPORT_NOT_AVAILABLE");
    }

    @Test
    void unknownJobsAre404ProblemDocuments() {
        String missing = UUID.randomUUID().toString();
        assertProblem(http.get("/api/v1/jobs/" + missing), 404, "JOB_NOT_FOUND");
        assertProblem(http.delete("/api/v1/jobs/" + missing), 404, "JOB_NOT_FOUND");
        assertProblem(http.get("/api/v1/jobs/" + missing + "/report"), 404, "JOB_NOT_FOUND");
        assertProblem(http.get("/api/v1/jobs/" + missing + "/events"), 404, "JOB_NOT_FOUND");
        assertProblem(http.get("/api/v1/nothing-here"), 404, "NOT_FOUND");
    }

    @Test
    void invalidRequestsNameTheFieldsAtFault() {
        record Case(String body, String code, String field, String message) {
        }
        List<Case> cases = List.of(
                new Case("{\"method\": \"nope\", \"model\": \"" + model + "\"}", "VALIDATION_FAILED", "method", "unknown method 'nope'"),
                new Case("{\"model\": \"" + model + "\"}", "VALIDATION_FAILED", "method", "is required"),
                new Case(job("{\"factor\": 0}", ""), "VALIDATION_FAILED", "params.factor", "out of range (0 < factor <= 10)"),
                new Case(job("{\"factor\": \"big\"}", ""), "VALIDATION_FAILED", "params.factor", "must be a number"),
                new Case(job("{\"bogus\": 1}", ""), "VALIDATION_FAILED", "params.bogus", "unknown parameter"),
                new Case(job("{}", ", \"backend\": \"tpu\""), "VALIDATION_FAILED", "backend", "not one of auto, cpu, cuda"),
                new Case(job("{}", ", \"priority\": \"high\""), "VALIDATION_FAILED", "priority", "wrong type"),
                new Case(job("{}", ", \"priority\": 5000"), "VALIDATION_FAILED", "priority", "between -1000 and 1000"),
                new Case(job("{}", ", \"colour\": \"red\""), "UNKNOWN_FIELD", "colour", "not a field"),
                new Case("{\"method\": \"" + ScaleMethod.NAME + "\", \"model\": \"" + model + "\"}", "VALIDATION_FAILED",
                        "calibration", "is required"),
                new Case("{\"method\": \"" + ScaleMethod.NAME + "\", \"model\": \"" + MODELS.resolve("missing") + "\", \"calibration\": \""
                        + calibration + "\"}", "VALIDATION_FAILED", "model", "does not exist"),
                new Case("{\"method\": \"" + ScaleMethod.NAME + "\", \"model\": \"" + model + "\", \"calibration\": \""
                        + MODELS.resolve("none.json") + "\"}", "VALIDATION_FAILED", "calibration", "does not exist"),
                new Case(job("{}", ", \"sampling\": {\"samples\": 0}"), "VALIDATION_FAILED", "sampling", "samples >= 1"),
                new Case(job("{}", ", \"resources\": {\"gpus\": 1}"), "VALIDATION_FAILED", "resources",
                        "is only accepted with the Kubernetes executor"),
                new Case(job("{}", ", \"resources\": {\"gpus\": -1}"), "VALIDATION_FAILED", "resources.gpus",
                        "gpus must be 0 or more, got -1"),
                new Case(job("{}", ", \"resources\": {\"cpus\": 4}"), "UNKNOWN_FIELD", "resources.cpus", "not a field"));
        int before = http.get("/api/v1/jobs?limit=200").json().path("items").size();
        for (Case c : cases) {
            Http.Response r = http.post("/api/v1/jobs", c.body());
            assertProblem(r, 400, c.code());
            assertThat(field(r)).as(c.body()).isEqualTo(c.field());
            assertThat(r.json().path("errors").path(0).path("message").stringValue()).as(c.body()).contains(c.message());
        }
        assertProblem(http.post("/api/v1/jobs", "{\"method\": "), 400, "MALFORMED_JSON");
        assertProblem(http.post("/api/v1/jobs", ""), 400, "MALFORMED_JSON");
        assertProblem(http.send(http.request("/api/v1/jobs").header("Content-Type", "text/plain")
                .POST(java.net.http.HttpRequest.BodyPublishers.ofString("hi")).build()), 415, "UNSUPPORTED_MEDIA_TYPE");
        assertThat(http.get("/api/v1/jobs?limit=200").json().path("items").size()).as("jobs created").isEqualTo(before);
    }

    @Test
    void pathsOutsideTheRootsAreRejectedBeforeAJobExists() throws IOException {
        Path linkOut = MODELS.resolve("link-out");
        Files.deleteIfExists(linkOut);
        Files.createSymbolicLink(linkOut, OUTSIDE.resolve("model"));
        Path outputLink = DATA.resolve("outputs").resolve("escape");
        Files.createDirectories(outputLink.getParent());
        Files.deleteIfExists(outputLink);
        Files.createSymbolicLink(outputLink, OUTSIDE);
        Files.writeString(OUTSIDE.resolve("calib.json"), "{\"input_ids\": [[1, 2, 3]]}");
        record Case(String body, String field) {
        }
        String method = "{\"method\": \"" + ScaleMethod.NAME + "\", ";
        List<Case> cases = List.of(
                new Case(method + "\"model\": \"" + MODELS + "/../outside/model\", \"calibration\": \"" + calibration + "\"}", "model"),
                new Case(method + "\"model\": \"../outside/model\", \"calibration\": \"" + calibration + "\"}", "model"),
                new Case(method + "\"model\": \"" + OUTSIDE.resolve("model") + "\", \"calibration\": \"" + calibration + "\"}", "model"),
                new Case(method + "\"model\": \"/etc\", \"calibration\": \"" + calibration + "\"}", "model"),
                new Case(method + "\"model\": \"" + linkOut + "\", \"calibration\": \"" + calibration + "\"}", "model"),
                new Case(method + "\"model\": \"link-out\", \"calibration\": \"" + calibration + "\"}", "model"),
                new Case(method + "\"model\": \"" + model + "\", \"calibration\": \"" + OUTSIDE.resolve("calib.json") + "\"}",
                        "calibration"),
                new Case(job("{}", ", \"eval\": \"/etc/hostname\""), "eval"),
                new Case(job("{}", ", \"output\": \"" + OUTSIDE.resolve("out") + "\""), "output"),
                new Case(job("{}", ", \"output\": \"../outside/out\""), "output"),
                new Case(job("{}", ", \"output\": \"" + DATA.resolve("outputs") + "\""), "output"),
                new Case(job("{}", ", \"output\": \"escape/out\""), "output"),
                new Case(job("{}", ", \"output\": \"" + MODELS.resolve("out") + "\""), "output"));
        int before = http.get("/api/v1/jobs?limit=200").json().path("items").size();
        for (Case c : cases) {
            Http.Response r = http.post("/api/v1/jobs", c.body());
            assertProblem(r, 400, "PATH_NOT_ALLOWED");
            assertThat(field(r)).as(c.body()).isEqualTo(c.field());
        }
        assertThat(http.get("/api/v1/jobs?limit=200").json().path("items").size()).as("jobs created").isEqualTo(before);
        assertThat(OUTSIDE.resolve("out")).doesNotExist();

        // a relative path inside the roots is fine, and an output that is taken is refused
        Http.Response ok = http.post("/api/v1/jobs", "{\"method\": \"" + ScaleMethod.NAME
                + "\", \"model\": \"tiny\", \"calibration\": \"calibration.json\", \"output\": \"named/run1\"}");
        assertThat(ok.status()).as(ok.body()).isEqualTo(202);
        JsonNode done = awaitFinal(ok.json().path("id").stringValue());
        assertThat(done.path("result").path("output").stringValue())
                .isEqualTo(DATA.resolve("outputs/named/run1").toRealPath().toString());
        Http.Response taken = http.post("/api/v1/jobs", job("{}", ", \"output\": \"named/run1\""));
        assertProblem(taken, 400, "VALIDATION_FAILED");
        assertThat(field(taken)).isEqualTo("output");
        assertThat(taken.json().path("errors").path(0).path("message").stringValue()).contains("already exists");
    }

    @Test
    void anIdempotencyKeyReturnsTheSameJobOnRetry() {
        String key = "retry-" + UUID.randomUUID();
        String body = job("{\"factor\": 0.25}", "");
        Http.Response first = http.post("/api/v1/jobs", body, "Idempotency-Key", key);
        Http.Response again = http.post("/api/v1/jobs", body, "Idempotency-Key", key);
        assertThat(first.status()).isEqualTo(202);
        assertThat(again.status()).isEqualTo(202);
        String id = first.json().path("id").stringValue();
        assertThat(again.json().path("id").stringValue()).isEqualTo(id);
        assertThat(again.header("Location")).isEqualTo(first.header("Location"));
        assertThat(again.header("Idempotent-Replayed")).isEqualTo("true");
        assertThat(first.header("Idempotent-Replayed")).isNull();
        awaitFinal(id);
        // after the job ran (its output now exists) a retry still returns it rather than failing validation
        Http.Response late = http.post("/api/v1/jobs", body, "Idempotency-Key", key);
        assertThat(late.status()).isEqualTo(202);
        assertThat(late.json().path("id").stringValue()).isEqualTo(id);
        assertThat(late.json().path("state").stringValue()).isEqualTo("SUCCEEDED");
        // the same key with a different request is an error naming the first job
        Http.Response other = http.post("/api/v1/jobs", job("{\"factor\": 0.75}", ""), "Idempotency-Key", key);
        assertProblem(other, 422, "IDEMPOTENCY_KEY_REUSED");
        assertThat(other.json().path("jobId").stringValue()).isEqualTo(id);
        // without a key every submission is a new job
        String a = http.post("/api/v1/jobs", body).json().path("id").stringValue();
        String b = http.post("/api/v1/jobs", body).json().path("id").stringValue();
        assertThat(a).isNotEqualTo(b);
        awaitFinal(a);
        awaitFinal(b);
    }

    @Test
    void cancellingAQueuedJobIsImmediateAndARunningJobStopsAtALayerBoundary() {
        String running = http.post("/api/v1/jobs", job("{\"sleep_ms\": 300}", "")).json().path("id").stringValue();
        http.await("/api/v1/jobs/" + running, WAIT, j -> j.path("state").stringValue().equals("RUNNING"));
        String queued = http.post("/api/v1/jobs", job("{}", "")).json().path("id").stringValue();

        Http.Response q = http.delete("/api/v1/jobs/" + queued);
        assertThat(q.status()).as(q.body()).isEqualTo(200);
        assertThat(q.json().path("state").stringValue()).isEqualTo("CANCELLED");
        assertThat(q.json().path("error").path("code").stringValue()).isEqualTo("CANCELLED");
        assertThat(q.json().path("startedAt").isNull()).isTrue();

        Http.Response r = http.delete("/api/v1/jobs/" + running);
        assertThat(r.status()).as(r.body()).isEqualTo(202);
        assertThat(r.json().path("cancelRequested").asBoolean()).isTrue();
        JsonNode done = awaitFinal(running);
        assertThat(done.path("state").stringValue()).isEqualTo("CANCELLED");
        assertThat(done.path("error").path("code").stringValue()).isEqualTo("CANCELLED");
        assertThat(done.path("progress").path("layer").asInt()).as("stopped before the last layer").isLessThan(3);
        assertThat(DATA.resolve("outputs").resolve(running)).doesNotExist();

        assertProblem(http.delete("/api/v1/jobs/" + running), 409, "JOB_ALREADY_FINISHED");
        assertProblem(http.delete("/api/v1/jobs/" + queued), 409, "JOB_ALREADY_FINISHED");
        assertThat(http.get("/api/v1/jobs/" + queued).json().path("state").stringValue()).isEqualTo("CANCELLED");
    }

    @Test
    void eventsStreamProgressUntilTheJobEnds() {
        String id = http.post("/api/v1/jobs", job("{\"sleep_ms\": 150}", "")).json().path("id").stringValue();
        List<String> meta = new ArrayList<>();
        List<Http.Event> events = http.events("/api/v1/jobs/" + id + "/events", meta);
        assertThat(meta.get(0)).startsWith("text/event-stream");
        assertThat(meta.get(1)).isEqualTo("200");
        assertThat(events).isNotEmpty();
        assertThat(events.get(0).name()).isEqualTo("state");
        List<JsonNode> jobs = events.stream().map(e -> Http.JSON.readTree(e.data())).toList();
        assertThat(jobs).allSatisfy(j -> assertThat(j.path("id").stringValue()).isEqualTo(id));
        JsonNode last = jobs.get(jobs.size() - 1);
        assertThat(last.path("state").stringValue()).isEqualTo("SUCCEEDED");
        assertThat(events.get(events.size() - 1).name()).isEqualTo("state");
        // the layers the job went through, in order, as progress events
        List<Integer> layers = jobs.stream().filter(j -> j.path("state").stringValue().equals("RUNNING"))
                .filter(j -> j.path("progress").path("layer").isNumber())
                .map(j -> j.path("progress").path("layer").asInt()).distinct().toList();
        assertThat(layers).as("layers seen").hasSizeGreaterThanOrEqualTo(3).isSorted();
        assertThat(events.stream().filter(e -> "progress".equals(e.name())).count()).isPositive();
        List<Double> fractions = jobs.stream().map(j -> j.path("progress").path("fraction").asDouble()).toList();
        assertThat(fractions.get(fractions.size() - 1)).isEqualTo(1.0);
        assertThat(events.stream().map(Http.Event::id).distinct().count()).isEqualTo(events.size());
        // a stream opened on a finished job sends its final state and ends
        List<Http.Event> after = http.events("/api/v1/jobs/" + id + "/events", new ArrayList<>());
        assertThat(after).hasSize(1);
        assertThat(Http.JSON.readTree(after.get(0).data()).path("state").stringValue()).isEqualTo("SUCCEEDED");
    }

    @Test
    void theListIsNewestFirstFilteredAndPaged() {
        List<String> ids = new ArrayList<>();
        for (int i = 0; i < 5; i++) {
            ids.add(http.post("/api/v1/jobs", job("{}", ", \"priority\": " + i)).json().path("id").stringValue());
        }
        ids.forEach(this::awaitFinal);
        List<String> seen = new ArrayList<>();
        String cursor = null;
        do {
            Http.Response page = http.get("/api/v1/jobs?method=" + ScaleMethod.NAME + "&state=succeeded&limit=2"
                    + (cursor == null ? "" : "&cursor=" + cursor));
            assertThat(page.status()).as(page.body()).isEqualTo(200);
            JsonNode items = page.json().path("items");
            assertThat(items.size()).isBetween(1, 2);
            items.forEach(j -> {
                assertThat(j.path("state").stringValue()).isEqualTo("SUCCEEDED");
                seen.add(j.path("id").stringValue());
            });
            JsonNode next = page.json().path("nextCursor");
            cursor = next.isNull() ? null : next.stringValue();
        } while (cursor != null);
        // newest first: the five submitted last come first, in reverse order of submission
        List<String> reversed = new ArrayList<>(ids);
        java.util.Collections.reverse(reversed);
        assertThat(seen.subList(0, 5)).isEqualTo(reversed);
        assertThat(seen).doesNotHaveDuplicates();
        assertThat(http.get("/api/v1/jobs?method=no-such-method").json().path("items").size()).isZero();
        Http.Response badState = http.get("/api/v1/jobs?state=DONE");
        assertProblem(badState, 400, "VALIDATION_FAILED");
        assertThat(field(badState)).isEqualTo("state");
        Http.Response badLimit = http.get("/api/v1/jobs?limit=0");
        assertProblem(badLimit, 400, "VALIDATION_FAILED");
        assertThat(field(badLimit)).isEqualTo("limit");
        assertThat(field(http.get("/api/v1/jobs?limit=abc"))).isEqualTo("limit");
        assertThat(field(http.get("/api/v1/jobs?cursor=xyz"))).isEqualTo("cursor");
    }

    @Test
    void methodsListTheSameParametersTheSubmissionValidates() {
        Http.Response r = http.get("/api/v1/methods");
        assertThat(r.status()).isEqualTo(200);
        JsonNode m = null;
        for (JsonNode n : r.json()) {
            if (n.path("name").stringValue().equals(ScaleMethod.NAME)) {
                m = n;
            }
        }
        assertThat(m).as(r.body()).isNotNull();
        assertThat(m.path("requiresCalibration").asBoolean()).isTrue();
        assertThat(m.path("writesModel").asBoolean()).isTrue();
        List<String> families = new ArrayList<>();
        m.path("families").forEach(f -> families.add(f.stringValue()));
        assertThat(families).isSorted().contains("mixtral", "llama", "qwen3_moe").doesNotContain("llava");
        JsonNode factor = m.path("params").path(0);
        assertThat(factor.path("name").stringValue()).isEqualTo("factor");
        assertThat(factor.path("type").stringValue()).isEqualTo("number");
        assertThat(factor.path("default").asDouble()).isEqualTo(0.5);
        assertThat(factor.path("min").asDouble()).isEqualTo(0.0);
        assertThat(factor.path("minExclusive").asBoolean()).isTrue();
        assertThat(factor.path("max").asDouble()).isEqualTo(10.0);
        assertThat(factor.path("maxExclusive").asBoolean()).isFalse();
        assertThat(factor.path("range").stringValue()).isEqualTo("0 < factor <= 10");
        assertThat(factor.path("required").asBoolean()).isFalse();
        assertThat(m.path("params").path(1).path("name").stringValue()).isEqualTo("sleep_ms");
        assertThat(m.path("params").path(1).path("type").stringValue()).isEqualTo("integer");
    }

    @Test
    void devicesListTheCpu() {
        Http.Response r = http.get("/api/v1/devices");
        assertThat(r.status()).isEqualTo(200);
        JsonNode cpu = null;
        for (JsonNode d : r.json()) {
            if (d.path("kind").stringValue().equals("cpu")) {
                cpu = d;
            } else if (!d.path("usable").asBoolean()) {
                // a GPU the worker cannot use is listed with the reason (no libcuda here)
                assertThat(d.path("reason").stringValue()).isNotBlank();
            }
        }
        assertThat(cpu).as("the CPU is always listed").isNotNull();
        assertThat(cpu.path("id").stringValue()).isEqualTo("cpu");
        assertThat(cpu.path("kind").stringValue()).isEqualTo("cpu");
        assertThat(cpu.path("usable").asBoolean()).isTrue();
        assertThat(cpu.path("blasLoaded").asBoolean()).isTrue();
        assertThat(cpu.path("memoryBytes").asLong()).isPositive();
        assertThat(cpu.path("threads").asInt()).isPositive();
        assertThat(cpu.has("computeCapability")).isTrue();
        assertThat(cpu.has("kernelsLoaded")).isTrue();
    }

    @Test
    void openApiAndSwaggerUiAreServed() {
        Http.Response docs = http.get("/v3/api-docs");
        assertThat(docs.status()).isEqualTo(200);
        JsonNode paths = docs.json().path("paths");
        assertThat(paths.has("/api/v1/jobs")).isTrue();
        assertThat(paths.path("/api/v1/jobs").has("post")).isTrue();
        assertThat(paths.path("/api/v1/jobs").has("get")).isTrue();
        assertThat(paths.path("/api/v1/jobs/{id}").has("get")).isTrue();
        assertThat(paths.path("/api/v1/jobs/{id}").has("delete")).isTrue();
        assertThat(paths.has("/api/v1/jobs/{id}/report")).isTrue();
        assertThat(paths.has("/api/v1/jobs/{id}/events")).isTrue();
        assertThat(paths.has("/api/v1/methods")).isTrue();
        assertThat(paths.has("/api/v1/devices")).isTrue();
        Http.Response ui = http.get("/swagger-ui.html");
        assertThat(ui.status()).isEqualTo(200);
        assertThat(ui.body()).containsIgnoringCase("swagger");
    }

    @Test
    void theEmbeddedDatabaseLivesUnderTheDataDirectory() {
        assertThat(DATA.resolve("db/whittle.mv.db")).isRegularFile();
    }

    @Test
    void healthProbesAnswer() {
        assertThat(http.get("/actuator/health").json().path("status").stringValue()).isEqualTo("UP");
        assertThat(http.get("/actuator/health/liveness").status()).isEqualTo(200);
        assertThat(http.get("/actuator/health/readiness").status()).isEqualTo(200);
    }

    @Test
    void theMetricsAppearAfterAJobRan() {
        String id = http.post("/api/v1/jobs", job("{}", "")).json().path("id").stringValue();
        assertThat(awaitFinal(id).path("state").stringValue()).isEqualTo("SUCCEEDED");
        Http.Response r = http.get("/actuator/prometheus");
        assertThat(r.status()).isEqualTo(200);
        String text = r.body();
        List<String> expected = List.of(
                "whittle_jobs_submitted_total{method=\"test-scale\"}",
                "whittle_jobs_completed_total{method=\"test-scale\",outcome=\"succeeded\"}",
                "whittle_job_duration_seconds_bucket{backend=\"cpu\",method=\"test-scale\",le=",
                "whittle_job_duration_seconds_count{backend=\"cpu\",method=\"test-scale\"}",
                "whittle_job_stage_duration_seconds_count{method=\"test-scale\",stage=\"method\"}",
                "whittle_job_stage_duration_seconds_count{method=\"test-scale\",stage=\"compress.forward\"}",
                "whittle_jobs_active{state=\"queued\"}",
                "whittle_jobs_active{state=\"running\"}",
                "whittle_kernel_duration_seconds_bucket{device=\"cpu\",kernel=\"linear\",le=",
                "whittle_kernel_duration_seconds_count{device=\"cpu\",kernel=\"attention\"}",
                "whittle_device_memory_used_bytes{device=\"cpu\"}",
                "whittle_device_memory_total_bytes{device=\"cpu\"}",
                "whittle_job_device_memory_peak_bytes_count{method=\"test-scale\"}",
                "whittle_bytes_processed_total{method=\"test-scale\"}");
        for (String e : expected) {
            assertThat(text).as("metric line starting " + e).contains(e);
        }
        assertThat(value(text, "whittle_bytes_processed_total{method=\"test-scale\"}")).isPositive();
        assertThat(value(text, "whittle_job_device_memory_peak_bytes_max{method=\"test-scale\"}")).isPositive();
        assertThat(value(text, "whittle_device_memory_total_bytes{device=\"cpu\"}")).isPositive();
    }

    /** SHA-256 of every file under a directory. */
    static Map<Path, String> digests(Path dir) throws IOException {
        Map<Path, String> out = new java.util.TreeMap<>();
        try (Stream<Path> walk = Files.walk(dir)) {
            for (Path p : walk.filter(Files::isRegularFile).toList()) {
                try {
                    out.put(dir.relativize(p), java.util.HexFormat.of().formatHex(
                            java.security.MessageDigest.getInstance("SHA-256").digest(Files.readAllBytes(p))));
                } catch (java.security.NoSuchAlgorithmException e) {
                    throw new IllegalStateException(e);
                }
            }
        }
        return out;
    }

    private static double value(String text, String series) {
        try (Stream<String> lines = text.lines()) {
            return lines.filter(l -> l.startsWith(series + " ")).map(l -> Double.parseDouble(l.substring(series.length() + 1).trim()))
                    .findFirst().orElseThrow(() -> new AssertionError("no series " + series));
        }
    }
}
