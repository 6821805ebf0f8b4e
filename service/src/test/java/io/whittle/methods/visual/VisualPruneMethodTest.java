package io.whittle.methods.visual;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.whittle.methods.InvalidParametersException;
import io.whittle.methods.JobRequest;
import io.whittle.methods.JobRunner;
import io.whittle.methods.Methods;
import io.whittle.model.ModelSpec.Family;
import io.whittle.model.SyntheticModels;
import io.whittle.model.safetensors.SafetensorsWriter;
import io.whittle.model.safetensors.TensorSource;
import io.whittle.tensor.DType;
import io.whittle.tensor.FloatTensor;
import io.whittle.tensor.Shape;
import java.awt.image.BufferedImage;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Random;
import javax.imageio.ImageIO;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;
import tools.jackson.databind.node.ArrayNode;
import tools.jackson.databind.node.ObjectNode;

/**
 * The visual-prune job end to end on a synthetic LLaVA model (text hidden 64, 4 layers, 4 heads; CLIP tower
 * hidden 64 at 336 px, 576 visual tokens) with a manifest mixing PNG/JPEG images, image_features and
 * image_embeds: outputs, report fields, the head table against the plan, and the bad-input errors.
 */
class VisualPruneMethodTest {

    private static final JsonMapper JSON = JsonMapper.builder().build();

    @TempDir
    static Path dir;
    static Path model;
    static final int IMAGE = 127;

    @BeforeAll
    static void setUp() throws Exception {
        model = dir.resolve("llava");
        SyntheticModels.write(new SyntheticModels.Request(Family.LLAVA, 4, 64, 96, 0, 0, 0, 0, 4, 4, 128, 31, DType.BF16, 1), model);
        Random random = new Random(4);
        BufferedImage img = new BufferedImage(400, 300, BufferedImage.TYPE_INT_RGB);
        for (int y = 0; y < 300; y++) {
            for (int x = 0; x < 400; x++) {
                img.setRGB(x, y, ((x * 255 / 400) << 16) | ((y * 255 / 300) << 8) | random.nextInt(256));
            }
        }
        ImageIO.write(img, "png", dir.resolve("a.png").toFile());
        ImageIO.write(img.getSubimage(50, 0, 250, 300), "jpg", dir.resolve("b.jpg").toFile());
        float[] feats = new float[2 * 576 * 64];
        for (int i = 0; i < feats.length; i++) {
            feats[i] = (float) random.nextGaussian();
        }
        try (FloatTensor f = FloatTensor.of(Shape.of(2, 576, 64), feats); FloatTensor e = FloatTensor.of(Shape.of(1, 576, 64),
                java.util.Arrays.copyOf(feats, 576 * 64))) {
            SafetensorsWriter.write(dir.resolve("feats.safetensors"), List.of(TensorSource.ofFloat("image_features", DType.F32, f)), Map.of());
            SafetensorsWriter.write(dir.resolve("embeds.safetensors"), List.of(TensorSource.ofFloat("image_embeds", DType.F32, e)), Map.of());
            SafetensorsWriter.write(dir.resolve("wrong.safetensors"),
                    List.of(TensorSource.ofFloat("image_features", DType.F32, f.reshape(2, 64, 576))), Map.of());
        }
        Files.writeString(dir.resolve("broken.png"), "not a png");
        writeManifest("manifest.json", List.of(
                sample("image", "a.png", prompt(random), answer(random)),
                sample("features", "feats.safetensors#1", prompt(random), answer(random)),
                sample("features", "embeds.safetensors", prompt(random), answer(random)),
                sample("image", "b.jpg", prompt(random), answer(random)),
                sample("features", "feats.safetensors", prompt(random), null)));
    }

    static int[] prompt(Random random) {
        int[] p = new int[4 + 1 + 6];
        for (int i = 0; i < p.length; i++) {
            p[i] = 1 + random.nextInt(IMAGE - 1);
        }
        p[4] = IMAGE;
        return p;
    }

    static int[] answer(Random random) {
        return new int[] {1 + random.nextInt(100), 1 + random.nextInt(100), 1 + random.nextInt(100)};
    }

    static ObjectNode sample(String kind, String file, int[] ids, int[] answer) {
        ObjectNode s = JSON.createObjectNode();
        s.put(kind, file);
        ArrayNode a = s.putArray("input_ids");
        for (int i : ids) {
            a.add(i);
        }
        if (answer != null) {
            ArrayNode b = s.putArray("answer_ids");
            for (int i : answer) {
                b.add(i);
            }
        }
        return s;
    }

    static Path writeManifest(String name, List<ObjectNode> samples) throws Exception {
        ObjectNode m = JSON.createObjectNode();
        ArrayNode arr = m.putArray("samples");
        samples.forEach(arr::add);
        Path p = dir.resolve(name);
        Files.writeString(p, JSON.writeValueAsString(m));
        return p;
    }

    static JobRunner.JobResult run(Path manifest, Map<String, ?> params, String out) throws Exception {
        JobRequest req = new JobRequest("visual-prune", model, manifest, null, params, dir.resolve(out), "cpu", null);
        return JobRunner.prepare(req).run(null, null);
    }

    @Test
    void jobWritesThePlanAndTheReport() throws Exception {
        assertThat(Methods.get("visual-prune").descriptor().requiresCalibration()).isTrue();
        JobRunner.JobResult r = run(dir.resolve("manifest.json"), Map.of("alpha", "0.02", "timing_samples", "2", "max_samples", "4",
                "exact_fidelity", "true"), "out1");
        JsonNode plan = JSON.readTree(Files.readString(r.output().resolve("visual-plan.json")));
        assertThat(plan.get("window").asInt()).isEqualTo(5);
        assertThat(plan.get("drop_layer").asInt()).isEqualTo(2); // default L / 2
        assertThat(plan.get("alpha").asDouble()).isEqualTo(0.02);
        assertThat(plan.get("kept_heads").size()).isEqualTo(4);
        assertThat(plan.get("kept_heads").get(0).size()).isEqualTo(4); // keep_layers = 2: layers 0, 1 keep all
        assertThat(plan.get("kept_heads").get(1).size()).isEqualTo(4);
        assertThat(plan.get("mean_ratios").size()).isEqualTo(4);
        assertThat(plan.get("mean_ratios").get(3).size()).isEqualTo(4);
        assertThat(plan.get("mean_ratios").get(3).get(0).asDouble()).isGreaterThan(0);
        // the vote is consistent with the reported mean ratios' scale: a head far above alpha on average is kept
        assertThat(r.output().resolve("model.safetensors")).doesNotExist(); // weights are not changed or copied

        JsonNode report = JSON.readTree(Files.readString(r.reportFile()));
        assertThat(report.get("method").stringValue()).isEqualTo("visual-prune");
        assertThat(report.get("calibration").get("samples").asInt()).isEqualTo(5); // in the manifest
        assertThat(report.get("result").get("calibration_samples").get("used").asInt()).isEqualTo(4);
        JsonNode res = report.get("result");
        JsonNode flops = res.get("visual_flops");
        assertThat(flops.get("dense").asDouble()).isGreaterThan(flops.get("pruned").asDouble());
        assertThat(flops.get("window_pairs").asLong()).isEqualTo(12_996);
        JsonNode kept = res.get("kept_heads");
        for (int l = 0; l < 4; l++) {
            assertThat(kept.get("per_layer").get(l)).isEqualTo(plan.get("kept_heads").get(l));
        }
        assertThat(kept.get("active_count_per_layer").get(3).asInt()).isZero();
        JsonNode fid = res.get("fidelity");
        assertThat(fid.get("positions").asInt()).isEqualTo(4 * (6 + 3)); // text rows after the image, answers included
        assertThat(fid.get("kl_mean").asDouble()).isGreaterThanOrEqualTo(0);
        assertThat(fid.get("top1_agreement").asDouble()).isBetween(0.0, 1.0);
        assertThat(fid.get("exact").get("kl_mean").asDouble()).isGreaterThanOrEqualTo(0);
        JsonNode prefill = res.get("prefill");
        assertThat(prefill.get("samples").asInt()).isEqualTo(2);
        assertThat(prefill.get("dense_seconds").asDouble()).isGreaterThan(0);
        assertThat(prefill.get("pruned_seconds").asDouble()).isGreaterThan(0);
        for (String stage : List.of("vision", "calibrate", "select", "prune", "fidelity")) {
            assertThat(report.get("timings").has(stage)).as(stage).isTrue();
        }
    }

    @Test
    void headsKeptPicksTheAlphaThatYieldsIt() throws Exception {
        JobRunner.JobResult r = run(dir.resolve("manifest.json"), Map.of("heads_kept", "3", "max_samples", "3", "drop_layer", "4",
                "score_rows", "last", "timing_samples", "1"), "out2");
        JsonNode plan = JSON.readTree(Files.readString(r.output().resolve("visual-plan.json")));
        assertThat(plan.get("average_kept_heads").asDouble()).isEqualTo(3.0);
        assertThat(plan.get("heads_kept_target").asDouble()).isEqualTo(3.0);
        assertThat(plan.get("score_rows").stringValue()).isEqualTo("last");
        assertThat(r.report().get("result").get("calibration_samples").get("used").asInt()).isEqualTo(3);
    }

    @Test
    void badWindowsAndParameterClashesAreRejectedBeforeWork() {
        for (String w : List.of("4", "0", "-1")) {
            assertThatThrownBy(() -> JobRunner.prepare(new JobRequest("visual-prune", model, dir.resolve("manifest.json"), null,
                    Map.of("window", w), dir.resolve("never"), "cpu", null)))
                    .isInstanceOf(InvalidParametersException.class)
                    .hasMessageContaining("params.window: window must be an odd number >= 1");
        }
        assertThatThrownBy(() -> JobRunner.prepare(new JobRequest("visual-prune", model, dir.resolve("manifest.json"), null,
                Map.of("alpha", "0.1", "heads_kept", "2"), dir.resolve("never"), "cpu", null)))
                .isInstanceOf(InvalidParametersException.class).hasMessageContaining("give alpha or heads_kept, not both");
        assertThatThrownBy(() -> JobRunner.prepare(new JobRequest("visual-prune", model, null, null,
                Map.of(), dir.resolve("never"), "cpu", null)))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("visual-prune needs calibration data");
    }

    @Test
    void manifestsPassThroughCalibrationLoadingButNotAsEvalTokens() throws Exception {
        Path manifest = dir.resolve("manifest.json");
        io.whittle.forward.CalibrationData.Loaded loaded = io.whittle.forward.CalibrationData.load(manifest, 128, model, null);
        assertThat(loaded.isManifest()).isTrue();
        assertThat(loaded.batch()).isNull();
        assertThat(loaded.manifest().get("samples").size()).isEqualTo(5);
        JobRequest req = new JobRequest("visual-prune", model, manifest, manifest, Map.of(), dir.resolve("eval-out"), "cpu", null);
        assertThatThrownBy(() -> JobRunner.prepare(req).run(null, null)).isInstanceOf(IllegalArgumentException.class)
                .hasMessage("eval file " + manifest + " is an image manifest; --eval needs token sequences");
        assertThat(dir.resolve("eval-out")).doesNotExist();
    }

    @Test
    void badSamplesAreClearErrors() throws Exception {
        Random random = new Random(8);
        int[] noImage = prompt(random);
        noImage[4] = 5;
        Path m1 = writeManifest("m1.json", List.of(sample("features", "feats.safetensors", noImage, null)));
        assertThatThrownBy(() -> run(m1, Map.of(), "bad1")).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("sample 0: input_ids has no image token (id 127)");
        Path m2 = writeManifest("m2.json", List.of(sample("features", "wrong.safetensors", prompt(random), null)));
        assertThatThrownBy(() -> run(m2, Map.of(), "bad2")).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("image_features in").hasMessageContaining("has shape [2, 64, 576]")
                .hasMessageContaining("expected a float tensor [N, 576, 64]");
        Path m3 = writeManifest("m3.json", List.of(sample("image", "broken.png", prompt(random), null)));
        assertThatThrownBy(() -> run(m3, Map.of(), "bad3")).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("broken.png cannot be decoded");
        assertThat(dir.resolve("bad1")).doesNotExist();
        assertThat(dir.resolve("bad3")).doesNotExist();
    }
}
