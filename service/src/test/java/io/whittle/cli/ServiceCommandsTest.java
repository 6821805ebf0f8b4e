package io.whittle.cli;

import static org.assertj.core.api.Assertions.assertThat;

import io.whittle.model.Checkpoint;
import io.whittle.testing.Http;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;
import tools.jackson.databind.JsonNode;

/** {@code whittle demo} end to end (with the test method standing in for camera-p) and the serve/demo options. */
class ServiceCommandsTest {

    @TempDir
    Path data;

    @Test
    void demoStartsTheServiceAndRunsAJobThroughTheHttpApi() throws Exception {
        CliRun r = CliRun.of("demo", "--method", "test-scale", "--param", "factor=0.5", "--data-dir", data.toString());
        String text = r.out();
        assertThat(r.code()).as(text + r.err()).isZero();
        assertThat(text).contains("synthesised a 4-layer MoE model").contains("service at http://localhost:")
                .contains("accepted").contains("RUNNING").contains("SUCCEEDED");
        Matcher m = Pattern.compile("compressed model: (\\S+)").matcher(text);
        assertThat(m.find()).as(text).isTrue();
        Path output = Path.of(m.group(1));
        assertThat(output).startsWith(data.toRealPath().resolve("outputs"));
        assertThat(output.resolve("config.json")).isRegularFile();
        try (Checkpoint in = Checkpoint.open(data.resolve("models/demo-mixtral")); Checkpoint written = Checkpoint.open(output)) {
            assertThat(written.tensorNames()).isEqualTo(in.tensorNames());
        }
        JsonNode report = Http.JSON.readTree(Files.readString(output.resolve("report.json")));
        assertThat(report.path("method").stringValue()).isEqualTo("test-scale");
        // the demo evaluates before and after: halving every down_proj changes the perplexity
        double before = report.path("eval").path("before").path("perplexity").asDouble();
        double after = report.path("eval").path("after").path("perplexity").asDouble();
        assertThat(before).isGreaterThan(1.0);
        assertThat(after).isGreaterThan(1.0).isNotEqualTo(before);
        assertThat(text).contains("\"perplexity\"");
    }

    @Test
    void demoPrepareOnlyWritesTheInputsAndPrintsTheRequestWithoutStartingTheService() throws Exception {
        for (int run = 0; run < 2; run++) {
            CliRun r = CliRun.of("demo", "--prepare-only", "--data-dir", data.toString());
            String text = r.out();
            assertThat(r.code()).as(text).isZero();
            assertThat(text).contains(run == 0 ? "synthesised a 4-layer MoE model" : "using the synthetic model")
                    .doesNotContain("service at");
            Matcher m = Pattern.compile("-d '(\\{.*})'").matcher(text);
            assertThat(m.find()).as(text).isTrue();
            JsonNode request = Http.JSON.readTree(m.group(1));
            assertThat(request.path("method").stringValue()).isEqualTo("camera-p");
            assertThat(request.path("params").path("ratio").asDouble()).isEqualTo(0.25);
            // relative to the default first model root, <data-dir>/models
            Path models = data.toAbsolutePath().resolve("models");
            assertThat(request.path("model").stringValue()).isEqualTo("demo-mixtral");
            assertThat(models.resolve(request.path("model").stringValue()).resolve("config.json")).isRegularFile();
            assertThat(models.resolve(request.path("calibration").stringValue())).isRegularFile();
            assertThat(models.resolve(request.path("eval").stringValue())).isRegularFile();
        }
        assertThat(data.resolve("db")).doesNotExist();
    }

    @Test
    void demoDefaultsToCameraPWithRatioAQuarter() {
        DemoCommand demo = new DemoCommand();
        new CommandLine(demo).parseArgs();
        assertThat(demo.method).isEqualTo("camera-p");
        assertThat(demo.parseParams()).isEqualTo(Map.of("ratio", "0.25"));
        DemoCommand other = new DemoCommand();
        new CommandLine(other).parseArgs("--method", "test-scale");
        assertThat(other.parseParams()).isEmpty();
    }

    @Test
    void serveRejectsArgumentsThatAreNotSpringProperties() {
        CliRun r = CliRun.of("serve", "stray");
        assertThat(r.code()).isEqualTo(2);
        assertThat(r.err()).contains("unexpected argument 'stray'");
    }
}
