package io.whittle.cli;

import io.whittle.app.WhittleApplication;
import io.whittle.model.ModelSpec.Family;
import io.whittle.model.SyntheticModels;
import io.whittle.tensor.DType;
import java.io.IOException;
import java.io.PrintWriter;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.springframework.boot.web.server.context.WebServerApplicationContext;
import org.springframework.context.ConfigurableApplicationContext;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.SerializationFeature;
import tools.jackson.databind.node.ArrayNode;
import tools.jackson.databind.node.ObjectNode;

/**
 * The end-to-end demonstration: starts the service on its embedded defaults, synthesises a small MoE model and
 * calibration tokens, submits a job over HTTP (JDK HttpClient only), follows its server-sent events, and prints the
 * report and where the compressed model is.
 */
@Command(name = "demo", description = {
        "Start the service on an embedded database, synthesise a small MoE model, submit a job through the HTTP API,",
        "follow its progress, and print the report and where the compressed model is."})
final class DemoCommand implements Callable<Integer> {

    static final String DEFAULT_METHOD = "camera-p";
    static final String DEFAULT_PARAM = "ratio=0.25";

    @Spec
    picocli.CommandLine.Model.CommandSpec spec;

    @Option(names = "--method", defaultValue = DEFAULT_METHOD, description = "Method to run (default ${DEFAULT-VALUE}).")
    String method;
    @Option(names = "--param", description = "Method parameter k=v (repeatable; default " + DEFAULT_PARAM + " for "
            + DEFAULT_METHOD + ").")
    List<String> params;
    @Option(names = "--data-dir", defaultValue = "whittle-data", description = "Embedded database, models and outputs (default ${DEFAULT-VALUE}).")
    Path dataDir;
    @Option(names = "--port", defaultValue = "0", description = "HTTP port (default: a free one).")
    int port;
    @Option(names = "--timeout", defaultValue = "900", description = "Seconds to wait for the job (default ${DEFAULT-VALUE}).")
    long timeoutSeconds;
    @Option(names = "--prepare-only", description = {"Only write the model and token files under <data-dir>/models and print the",
            "job request to submit to a running service (paths relative to its first model root); e.g. to seed a volume."})
    boolean prepareOnly;

    @Override
    public Integer call() throws Exception {
        PrintWriter out = spec.commandLine().getOut();
        Path data = dataDir.toAbsolutePath().normalize();
        Path models = Files.createDirectories(data.resolve("models"));
        Path model = models.resolve("demo-mixtral");
        Path calibration = models.resolve("demo-calibration.json");
        Path eval = models.resolve("demo-eval.json");
        var synth = new SyntheticModels.Request(Family.MIXTRAL, 4, 128, 256, 8, 2, 0, 0, 4, 2, 1024, 7, DType.BF16, 1);
        if (!Files.isRegularFile(model.resolve("config.json"))) {
            SyntheticModels.write(synth, model);
            out.println("synthesised a " + synth.layers() + "-layer MoE model (mixtral, " + synth.experts() + " experts, top-"
                    + synth.topK() + ") in " + model);
        } else {
            out.println("using the synthetic model in " + model);
        }
        // tokens drawn from the dense model itself: it is their best predictor, so perplexity after compression
        // measures how far the compressed model moved (random tokens on random weights would measure nothing)
        writeSampledTokens(out, model, calibration, 16, 128, 11);
        writeSampledTokens(out, model, eval, 8, 128, 12);
        if (prepareOnly) {
            ObjectNode body = request(models.relativize(model), models.relativize(calibration), models.relativize(eval));
            out.println("wrote the demo model and tokens under " + models + "; with that directory as the service's first model "
                    + "root, submit a job with:");
            out.println("  curl -s -X POST http://localhost:8080/api/v1/jobs -H 'Content-Type: application/json' -d '"
                    + Json.MAPPER.writer().without(SerializationFeature.INDENT_OUTPUT).writeValueAsString(body) + "'");
            return 0;
        }

        List<String> args = List.of("--whittle.role=all", "--whittle.storage.data-dir=" + data, "--server.port=" + port,
                "--whittle.security.api-keys=", "--whittle.worker.poll-interval=200ms", "--logging.level.root=WARN",
                "--logging.level.io.whittle=WARN", "--spring.main.banner-mode=off");
        out.println("starting the service (H2 database under " + data.resolve("db") + ")...");
        out.flush();
        try (ConfigurableApplicationContext context = WhittleApplication.start(Map.of(), args.toArray(String[]::new))) {
            int actualPort = ((WebServerApplicationContext) context).getWebServer().getPort();
            String base = "http://localhost:" + actualPort;
            out.println("service at " + base + " (Swagger UI: " + base + "/swagger-ui.html, metrics: " + base
                    + "/actuator/prometheus)");
            return run(out, base, model, calibration, eval);
        }
    }

    private int run(PrintWriter out, String base, Path model, Path calibration, Path eval) throws Exception {
        HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(10)).build();
        ObjectNode body = request(model, calibration, eval);
        out.println("POST " + base + "/api/v1/jobs " + body);
        HttpResponse<String> submitted = http.send(HttpRequest.newBuilder(URI.create(base + "/api/v1/jobs"))
                .header("Content-Type", "application/json")
                .POST(HttpRequest.BodyPublishers.ofString(Json.MAPPER.writeValueAsString(body))).build(),
                HttpResponse.BodyHandlers.ofString());
        if (submitted.statusCode() != 202) {
            out.println("the service refused the job (" + submitted.statusCode() + "): " + submitted.body());
            return 1;
        }
        String location = submitted.headers().firstValue("Location").orElseThrow();
        String id = Json.MAPPER.readTree(submitted.body()).path("id").stringValue();
        out.println("job " + id + " accepted: " + base + location);
        out.flush();

        follow(out, http, base + location + "/events");

        JsonNode job = Json.MAPPER.readTree(http.send(HttpRequest.newBuilder(URI.create(base + location)).GET().build(),
                HttpResponse.BodyHandlers.ofString()).body());
        String state = job.path("state").stringValue();
        out.println("job " + id + " " + state + " (attempt " + job.path("attempt").asInt() + ", device "
                + job.path("device").asString("?") + ")");
        if (!"SUCCEEDED".equals(state)) {
            out.println("error: " + job.path("error"));
            return 1;
        }
        HttpResponse<String> report = http.send(HttpRequest.newBuilder(URI.create(base + location + "/report")).GET().build(),
                HttpResponse.BodyHandlers.ofString());
        out.println("report (" + base + location + "/report):");
        out.println(Json.write(Json.MAPPER.readTree(report.body())));
        out.println("compressed model: " + job.path("result").path("output").stringValue());
        out.println("report file:      " + job.path("result").path("report").stringValue());
        return 0;
    }

    /** The job request for the demo model and token files. */
    private ObjectNode request(Path model, Path calibration, Path eval) {
        ObjectNode body = Json.object();
        body.put("method", method);
        body.put("model", model.toString());
        body.put("calibration", calibration.toString());
        body.put("eval", eval.toString());
        ObjectNode p = body.putObject("params");
        parseParams().forEach((k, v) -> p.set(k, jsonValue(v)));
        return body;
    }

    /** Prints the job's progress from its event stream until the stream ends (the job reached a final state). */
    private void follow(PrintWriter out, HttpClient http, String url) throws IOException, InterruptedException {
        HttpResponse<Stream<String>> events = http.send(HttpRequest.newBuilder(URI.create(url))
                .header("Accept", "text/event-stream").GET().build(), HttpResponse.BodyHandlers.ofLines());
        ScheduledExecutorService watchdog = Executors.newSingleThreadScheduledExecutor(r -> {
            Thread t = new Thread(r, "demo-timeout");
            t.setDaemon(true);
            return t;
        });
        try (Stream<String> lines = events.body()) {
            watchdog.schedule(lines::close, timeoutSeconds, TimeUnit.SECONDS);
            StringBuilder data = new StringBuilder();
            String last = "";
            Iterator<String> it = lines.iterator();
            while (it.hasNext()) {
                String line = it.next();
                if (line.startsWith("data:")) {
                    data.append(line.substring(5).trim());
                } else if (line.isEmpty() && !data.isEmpty()) {
                    JsonNode job = Json.MAPPER.readTree(data.toString());
                    data.setLength(0);
                    String text = describe(job);
                    if (!text.equals(last)) {
                        out.println(text);
                        out.flush();
                        last = text;
                    }
                }
            }
        } catch (IllegalStateException | java.io.UncheckedIOException e) {
            out.println("stopped following the job: " + e.getMessage());
        } finally {
            watchdog.shutdownNow();
        }
    }

    private static String describe(JsonNode job) {
        JsonNode p = job.path("progress");
        StringBuilder sb = new StringBuilder(String.format("[%3.0f%%] %-9s", 100 * p.path("fraction").asDouble(),
                job.path("state").stringValue()));
        if (p.path("stage").isString()) {
            sb.append(' ').append(p.path("stage").stringValue());
        }
        if (p.path("layer").isNumber()) {
            sb.append(" layer ").append(p.path("layer").asInt() + 1).append('/').append(p.path("layers").asInt());
        }
        return sb.toString();
    }

    /** The --param values, or ratio=0.25 when none are given and the method is camera-p. */
    Map<String, String> parseParams() {
        List<String> given = params;
        if (given == null || given.isEmpty()) {
            given = DEFAULT_METHOD.equals(method) ? List.of(DEFAULT_PARAM) : List.of();
        }
        Map<String, String> values = new LinkedHashMap<>();
        for (String p : given) {
            int eq = p.indexOf('=');
            if (eq <= 0) {
                throw new IllegalArgumentException("--param '" + p + "' must be name=value");
            }
            values.put(p.substring(0, eq).trim(), p.substring(eq + 1).trim());
        }
        return values;
    }

    /** A --param value as JSON: a number or boolean when it reads as one, else a string. */
    private static JsonNode jsonValue(String v) {
        if (v.equals("true") || v.equals("false")) {
            return Json.MAPPER.getNodeFactory().booleanNode(Boolean.parseBoolean(v));
        }
        try {
            return Json.MAPPER.getNodeFactory().numberNode(new java.math.BigDecimal(v));
        } catch (NumberFormatException e) {
            return Json.MAPPER.getNodeFactory().stringNode(v);
        }
    }

    /** Writes {@code sequences} x {@code length} tokens sampled from the model (seeded) unless the file exists. */
    private static void writeSampledTokens(PrintWriter out, Path model, Path file, int sequences, int length, long seed)
            throws IOException {
        if (Files.isRegularFile(file)) {
            return;
        }
        out.println("sampling " + sequences + " x " + length + " tokens from the model for " + file.getFileName() + "...");
        out.flush();
        List<int[]> seqs;
        try (io.whittle.compute.Backend b = io.whittle.compute.Backends.create("cpu")) {
            seqs = io.whittle.forward.DenseSampler.sample(model, b, sequences, length, 1.0, seed);
        }
        ObjectNode root = Json.object();
        root.set("input_ids", io.whittle.forward.CalibrationData.toJson(seqs));
        Files.writeString(file, Json.MAPPER.writeValueAsString(root));
    }
}
