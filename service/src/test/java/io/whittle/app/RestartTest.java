package io.whittle.app;

import static org.assertj.core.api.Assertions.assertThat;

import com.zaxxer.hikari.HikariDataSource;
import io.whittle.jobs.Job;
import io.whittle.jobs.JobState;
import io.whittle.jobs.JobStore;
import io.whittle.testing.Http;
import io.whittle.testing.ScaleMethod;
import io.whittle.testing.TestDatabases;
import io.whittle.testing.TestModels;
import java.nio.file.Path;
import java.time.Clock;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.springframework.boot.web.server.context.WebServerApplicationContext;
import org.springframework.context.ConfigurableApplicationContext;
import tools.jackson.databind.JsonNode;

/** Stopping and starting the whole service on its embedded database keeps every job and finishes the queued ones. */
class RestartTest {

    static final Duration WAIT = Duration.ofSeconds(60);

    @TempDir
    Path data;

    ConfigurableApplicationContext start() {
        return WhittleApplication.start(Map.of(), "--whittle.storage.data-dir=" + data, "--server.port=0",
                "--whittle.worker.lease=2s", "--whittle.worker.heartbeat=500ms", "--whittle.worker.poll-interval=100ms",
                "--whittle.worker.shutdown-grace=200ms", "--whittle.worker.release-timeout=20s");
    }

    static Http http(ConfigurableApplicationContext context) {
        return new Http(((WebServerApplicationContext) context).getWebServer().getPort(), null);
    }

    @Test
    void aRestartKeepsEveryJobAndFinishesTheQueuedOnes() throws Exception {
        Path model = data.resolve("models/tiny");
        TestModels.tinyMoe(model, 4, 3);
        Path calibration = TestModels.tokens(data.resolve("models/calibration.json"), 2, 16, 128, 5);
        String quick = "{\"method\": \"" + ScaleMethod.NAME + "\", \"model\": \"tiny\", \"calibration\": \"calibration.json\"}";
        String slow = quick.replace("}", ", \"params\": {\"sleep_ms\": 250}}");
        List<String> ids = new ArrayList<>();
        String interrupted;
        try (ConfigurableApplicationContext first = start()) {
            Http http = http(first);
            ids.add(http.post("/api/v1/jobs", quick).json().path("id").stringValue());
            http.await("/api/v1/jobs/" + ids.get(0), WAIT, j -> j.path("state").stringValue().equals("SUCCEEDED"));
            ids.add(http.post("/api/v1/jobs", slow).json().path("id").stringValue());
            for (int i = 0; i < 2; i++) { // queued behind the slow one (one worker slot)
                ids.add(http.post("/api/v1/jobs", quick).json().path("id").stringValue());
            }
            interrupted = ids.get(1);
            http.await("/api/v1/jobs/" + interrupted, WAIT, j -> j.path("state").stringValue().equals("RUNNING")
                    && j.path("progress").path("layer").asInt(-1) >= 1);
        } // stopping: the running job is given back to the queue after the (short) grace period

        TestDatabases.Database db = TestDatabases.h2(data, false);
        try (HikariDataSource ds = db.dataSource(2)) {
            JobStore store = new JobStore(ds, Clock.systemUTC());
            assertThat(store.find(ids.get(0)).orElseThrow().state()).isEqualTo(JobState.SUCCEEDED);
            for (String id : ids.subList(1, 4)) {
                Job j = store.find(id).orElseThrow();
                assertThat(j.state()).as(id).isEqualTo(JobState.QUEUED);
                assertThat(j.attempt()).as(id).isZero();
                assertThat(j.leaseOwner()).isNull();
            }
        }
        assertThat(data.resolve("outputs").resolve(interrupted)).doesNotExist();

        try (ConfigurableApplicationContext second = start()) {
            Http http = http(second);
            for (String id : ids) {
                JsonNode j = http.await("/api/v1/jobs/" + id, WAIT, n -> n.path("state").stringValue().equals("SUCCEEDED"));
                assertThat(j.path("attempt").asInt()).as(id).isEqualTo(1);
                assertThat(Path.of(j.path("result").path("output").stringValue()).resolve("report.json")).isRegularFile();
            }
            List<String> listed = new ArrayList<>();
            http.get("/api/v1/jobs").json().path("items").forEach(j -> listed.add(j.path("id").stringValue()));
            assertThat(listed).containsExactlyInAnyOrderElementsOf(ids);
        }
    }
}
