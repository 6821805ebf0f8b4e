package io.whittle.cli;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;

/** The CLI contract: verbs, flags, JSON fields, exit codes and one-line errors. */
class CliTest {

    private static final JsonMapper JSON = JsonMapper.builder().build();

    @TempDir
    static Path dir;
    static Path model;


    static CliRun run(String... args) {
        return CliRun.of(args);
    }

    @BeforeAll
    static void synthesize() {
        model = dir.resolve("moe");
        CliRun r = run("synth", "--family", "mixtral", "--layers", "2", "--hidden", "32", "--intermediate", "48", "--experts", "4",
                "--top-k", "2", "--heads", "4", "--kv-heads", "2", "--vocab", "64", "--seed", "3", "--shards", "2", "--out",
                model.toString());
        assertThat(r.code()).as(r.err()).isZero();
    }

    @Test
    void synthWritesTheRealLayoutAndInspectDescribesIt() {
        assertThat(model.resolve("model.safetensors.index.json")).exists();
        assertThat(model.resolve("model-00001-of-00002.safetensors")).exists();
        assertThat(model.resolve("config.json")).exists();
        assertThat(model.resolve("tokenizer.json")).exists();
        CliRun r = run("inspect", model.toString());
        assertThat(r.code()).isZero();
        JsonNode j = r.json();
        assertThat(j.get("model_type").stringValue()).isEqualTo("mixtral");
        assertThat(j.get("layers").asInt()).isEqualTo(2);
        // embed + lm_head 2*64*32, per layer: 2 norms 64, q 32*32, k,v 16*32 each, o 32*32, router 4*32, experts 4*3*48*32, final norm 32
        long perLayer = 2 * 32 + 32 * 32 + 2 * 16 * 32 + 32 * 32 + 4 * 32 + 4 * 3 * 48 * 32;
        assertThat(j.get("parameters").asLong()).isEqualTo(2 * 64 * 32 + 2 * perLayer + 32);
        assertThat(j.get("problems")).isEmpty();
        JsonNode first = j.get("tensors").get(0);
        assertThat(first.has("name") && first.has("dtype") && first.has("shape")).isTrue();
        boolean found = false;
        for (JsonNode t : j.get("tensors")) {
            if (t.get("name").stringValue().equals("model.layers.1.block_sparse_moe.experts.3.w2.weight")) {
                found = true;
                assertThat(t.get("dtype").stringValue()).isEqualTo("BF16");
                assertThat(t.get("shape").toString()).isEqualTo("[32,48]");
            }
        }
        assertThat(found).isTrue();
    }

    @Test
    void evalPrintsTheContractFields() throws Exception {
        Path calib = dir.resolve("calib.json");
        Files.writeString(calib, "{\"input_ids\": [[1, 5, 9, 33, 2, 7], [4, 4, 60, 1]]}");
        CliRun r = run("eval", "--model", model.toString(), "--calibration", calib.toString(), "--backend", "cpu");
        assertThat(r.code()).as(r.err()).isZero();
        JsonNode j = r.json();
        assertThat(j.get("sequences").asInt()).isEqualTo(2);
        assertThat(j.get("tokens").asInt()).as("predicted positions").isEqualTo(5 + 3);
        double mean = j.get("mean_nll").asDouble();
        assertThat(j.get("perplexity").asDouble()).isCloseTo(Math.exp(mean), org.assertj.core.data.Offset.offset(1e-9 * Math.exp(mean)));
        JsonNode per = j.get("per_sequence_mean_nll");
        assertThat(per).hasSize(2);
        assertThat((per.get(0).asDouble() * 5 + per.get(1).asDouble() * 3) / 8).isCloseTo(mean, org.assertj.core.data.Offset.offset(1e-12));
    }

    @Test
    void tokenOutsideVocabularyNamesSequenceAndPosition() throws Exception {
        Path calib = dir.resolve("bad.json");
        Files.writeString(calib, "{\"input_ids\": [[1, 2, 3], [4, 64, 5]]}");
        CliRun r = run("eval", "--model", model.toString(), "--calibration", calib.toString());
        assertThat(r.code()).isNotZero();
        assertThat(r.err()).contains("sequence 1").contains("position 1").contains("64").doesNotContain("at io.whittle");
        assertThat(r.err().strip().lines().count()).isEqualTo(1);
        assertThat(r.out()).isEmpty();
    }

    @Test
    void verboseShowsTheStackTrace() throws Exception {
        Path calib = dir.resolve("bad2.json");
        Files.writeString(calib, "{\"input_ids\": [[1, 999]]}");
        CliRun r = run("eval", "--model", model.toString(), "--calibration", calib.toString(), "--verbose");
        assertThat(r.code()).isNotZero();
        assertThat(r.err()).contains("at io.whittle");
    }

    @Test
    void textCalibrationIsTokenizedAndWindowsAreSaved() throws Exception {
        StringBuilder text = new StringBuilder();
        for (int i = 0; i < 300; i++) {
            text.append("w").append(1 + (i * 7) % 63).append(i % 10 == 9 ? "\n" : " ");
        }
        Path txt = dir.resolve("corpus.txt");
        Files.writeString(txt, text.toString());
        Path windows = dir.resolve("windows.json");
        CliRun r = run("eval", "--model", model.toString(), "--calibration", txt.toString(), "--samples", "3", "--seq-len", "16",
                "--seed", "5", "--windows-out", windows.toString());
        assertThat(r.code()).as(r.err()).isZero();
        assertThat(r.json().get("sequences").asInt()).isEqualTo(3);
        assertThat(r.json().get("tokens").asInt()).isEqualTo(3 * 15);
        JsonNode w = JSON.readTree(Files.readString(windows));
        assertThat(w.get("seed").asLong()).isEqualTo(5);
        assertThat(w.get("input_ids")).hasSize(3);
        // the word-level tokenizer maps w<i> to id i, so every window is a run of the corpus' id sequence
        for (JsonNode seq : w.get("input_ids")) {
            assertThat(seq).hasSize(16);
            for (int i = 1; i < 16; i++) {
                int a = seq.get(i - 1).asInt(), b = seq.get(i).asInt();
                assertThat((b - 1 + 63) % 63).isEqualTo((a - 1 + 7) % 63);
            }
        }
        // the same windows as a JSON token file give the same result
        Path again = dir.resolve("again.json");
        Files.writeString(again, "{\"input_ids\": " + w.get("input_ids") + "}");
        CliRun r2 = run("eval", "--model", model.toString(), "--calibration", again.toString());
        assertThat(r2.json().get("mean_nll").asDouble()).isEqualTo(r.json().get("mean_nll").asDouble());
    }

    @Test
    void unsupportedModelTypeListsSupportedOnes() throws Exception {
        Path bad = dir.resolve("gpt2");
        Files.createDirectories(bad);
        Files.writeString(bad.resolve("config.json"), "{\"model_type\": \"gpt2\"}");
        Path calib = dir.resolve("c.json");
        Files.writeString(calib, "{\"input_ids\": [[1, 2]]}");
        CliRun r = run("eval", "--model", bad.toString(), "--calibration", calib.toString());
        assertThat(r.code()).isNotZero();
        assertThat(r.err()).contains("gpt2").contains("mixtral").contains("qwen2_moe").contains("llava");
    }

    @Test
    void unknownBackendAndMissingFilesAreClearErrors() throws Exception {
        Path calib = dir.resolve("c2.json");
        Files.writeString(calib, "{\"input_ids\": [[1, 2]]}");
        assertThat(run("eval", "--model", model.toString(), "--calibration", calib.toString(), "--backend", "tpu").err())
                .contains("unknown backend 'tpu'");
        CliRun cuda = run("eval", "--model", model.toString(), "--calibration", calib.toString(), "--backend", "cuda");
        assertThat(cuda.code()).isNotZero();
        assertThat(cuda.err()).contains("cuda");
        assertThat(run("eval", "--model", dir.resolve("nope").toString(), "--calibration", calib.toString()).err())
                .contains("nope");
        assertThat(run("eval", "--model", model.toString(), "--calibration", dir.resolve("missing.json").toString()).err())
                .contains("missing.json").contains("does not exist");
        CliRun synth = run("synth", "--family", "mixtral", "--layers", "1", "--hidden", "30", "--intermediate", "8", "--experts", "2",
                "--top-k", "3", "--heads", "4", "--kv-heads", "2", "--vocab", "10", "--seed", "1", "--out", dir.resolve("x").toString());
        assertThat(synth.code()).isNotZero();
        assertThat(synth.err()).contains("--hidden 30");
        assertThat(dir.resolve("x")).doesNotExist();
    }

    @Test
    void sampleDrawsDeterministicTokensThatTheModelPredictsBetterThanRandomOnes() throws Exception {
        Path a = dir.resolve("sample-a.json");
        Path b = dir.resolve("sample-b.json");
        for (Path p : new Path[] {a, b}) {
            CliRun r = run("sample", "--model", model.toString(), "--sequences", "3", "--seq-len", "20", "--seed", "9", "--out",
                    p.toString());
            assertThat(r.code()).as(r.err()).isZero();
        }
        assertThat(Files.readString(a)).isEqualTo(Files.readString(b));
        JsonNode ids = JSON.readTree(Files.readString(a)).get("input_ids");
        assertThat(ids).hasSize(3);
        for (JsonNode seq : ids) {
            assertThat(seq).hasSize(20);
            seq.forEach(t -> assertThat(t.asInt()).isBetween(0, 63));
        }
        double sampled = run("eval", "--model", model.toString(), "--calibration", a.toString()).json().get("mean_nll").asDouble();
        Path random = dir.resolve("random.json");
        StringBuilder sb = new StringBuilder("{\"input_ids\": [");
        java.util.Random rnd = new java.util.Random(4);
        for (int s = 0; s < 3; s++) {
            sb.append(s == 0 ? "[" : ", [");
            for (int i = 0; i < 20; i++) {
                sb.append(i == 0 ? "" : ", ").append(rnd.nextInt(64));
            }
            sb.append(']');
        }
        Files.writeString(random, sb.append("]}").toString());
        double uniform = run("eval", "--model", model.toString(), "--calibration", random.toString()).json().get("mean_nll").asDouble();
        assertThat(sampled).isLessThan(uniform);
        assertThat(run("sample", "--model", model.toString(), "--out", a.toString()).err()).contains("already exists");
    }
}
