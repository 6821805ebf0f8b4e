package io.whittle.methods.camera;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.whittle.compute.cpu.CpuBackend;
import io.whittle.forward.CalibrationData;
import io.whittle.forward.Evaluation;
import io.whittle.forward.LayerwisePipeline;
import io.whittle.forward.PipelineResult;
import io.whittle.forward.TokenBatch;
import io.whittle.methods.InvalidParametersException;
import io.whittle.methods.JobRequest;
import io.whittle.methods.JobRunner;
import io.whittle.model.Checkpoint;
import io.whittle.model.ModelSpec;
import io.whittle.model.ModelSpec.Family;
import io.whittle.model.ModelSpec.Mlp;
import io.whittle.model.ModelSpecs;
import io.whittle.model.SyntheticModels;
import io.whittle.model.safetensors.SafetensorsFile;
import io.whittle.tensor.DType;
import io.whittle.tensor.HostAllocator;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.SortedMap;
import java.util.concurrent.CancellationException;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.node.ObjectNode;

/** camera-analyze and camera-p through the JobRunner, checked at the byte level against the input checkpoint. */
class CameraJobTest {

    @TempDir
    Path dir;
    Path calibration;
    Path eval;

    @BeforeEach
    void tokens() {
        calibration = CameraFixtures.randomTokens(dir.resolve("calib.json"), 4, 24, 64, 21);
        eval = CameraFixtures.randomTokens(dir.resolve("eval.json"), 3, 20, 64, 22);
    }

    private Path model(Family family) {
        return CameraFixtures.model(dir, family, 5);
    }

    private JobRunner.JobResult run(String method, Path model, Map<String, ?> params, String out) throws Exception {
        return CameraFixtures.run(method, model, calibration, null, params, dir.resolve(out));
    }

    /** Row r of a [rows, cols] tensor's bytes is all zero. */
    private static boolean zeroRow(byte[] b, int r, int cols, int size) {
        for (int i = r * cols * size; i < (r + 1) * cols * size; i++) {
            if (b[i] != 0) {
                return false;
            }
        }
        return true;
    }

    private static boolean zeroColumn(byte[] b, int c, int rows, int cols, int size) {
        for (int r = 0; r < rows; r++) {
            for (int k = 0; k < size; k++) {
                if (b[(r * cols + c) * size + k] != 0) {
                    return false;
                }
            }
        }
        return true;
    }

    @ParameterizedTest
    @EnumSource(value = Family.class, names = {"QWEN2_MOE", "DEEPSEEK", "MIXTRAL"})
    void maskedLayoutChangesOnlyThePrunedChannels(Family family) throws Exception {
        Path model = model(family);
        JobRunner.JobResult r = run("camera-p", model, Map.of("ratio", "0.3"), "masked");
        ModelSpec spec = ModelSpecs.load(model);
        JsonNode layers = r.report().get("result").get("layers");
        assertEquals(spec.moeLayers().size(), layers.size());
        try (Checkpoint in = Checkpoint.open(model); Checkpoint out = Checkpoint.open(r.output())) {
            assertEquals(in.tensorNames(), out.tensorNames());
            Map<String, boolean[]> zeroRows = new HashMap<>();
            for (int l : spec.moeLayers()) {
                MoePool pool = MoePool.of(spec, l);
                long pruned = 0;
                int[] kept = new int[pool.groupCount()];
                for (int g = 0; g < pool.groupCount(); g++) {
                    Mlp mlp = pool.groupMlp(g);
                    int width = pool.groupWidth(g);
                    byte[] gate = CameraFixtures.bytes(out, mlp.gate());
                    byte[] up = CameraFixtures.bytes(out, mlp.up());
                    byte[] down = CameraFixtures.bytes(out, mlp.down());
                    boolean[] z = new boolean[width];
                    for (int j = 0; j < width; j++) {
                        z[j] = zeroRow(gate, j, pool.hidden(), 2);
                        // the three vectors of a micro-expert go together
                        assertEquals(z[j], zeroRow(up, j, pool.hidden(), 2), mlp.up() + " row " + j);
                        assertEquals(z[j], zeroColumn(down, j, pool.hidden(), width, 2), mlp.down() + " column " + j);
                        pruned += z[j] ? 1 : 0;
                        kept[g] += z[j] ? 0 : 1;
                    }
                    zeroRows.put(mlp.gate(), z);
                }
                JsonNode lr = layers.get(spec.moeLayers().stream().toList().indexOf(l));
                assertEquals(l, lr.get("layer").asInt());
                assertEquals(pool.size(), lr.get("N_e").asLong());
                assertEquals(Selection.prunedCount(pool.size(), 0.3), pruned, "layer " + l);
                assertEquals(pruned, lr.get("pruned").asLong());
                assertEquals(pool.hasShared() ? kept[0] : 0, lr.get("shared_kept").asInt());
                for (int e = 0; e < pool.experts(); e++) {
                    assertEquals(kept[pool.hasShared() ? e + 1 : e], lr.get("expert_kept_widths").get(e).asInt());
                }
                double relErr = lr.get("relative_error").asDouble();
                assertTrue(relErr > 0 && relErr < 1, "relative error " + relErr);
            }
            // every byte outside the pruned channels is the input's
            for (String name : in.tensorNames()) {
                assertEquals(in.entry(name).dtype(), out.entry(name).dtype(), name);
                assertEquals(in.entry(name).shape(), out.entry(name).shape(), name);
                byte[] a = CameraFixtures.bytes(in, name);
                byte[] b = CameraFixtures.bytes(out, name);
                String gateName = name.replace("up_proj", "gate_proj").replace("down_proj", "gate_proj")
                        .replace(".w3.", ".w1.").replace(".w2.", ".w1.");
                boolean[] z = zeroRows.get(gateName);
                if (z == null) {
                    assertArrayEquals(a, b, name + " must be copied unchanged");
                    continue;
                }
                int width = z.length;
                boolean isDown = name.contains("down_proj") || name.contains(".w2.");
                int hidden = spec.hiddenSize();
                for (int i = 0; i < a.length / 2; i++) {
                    int channel = isDown ? i % width : i / hidden;
                    if (!z[channel]) {
                        assertEquals(a[2 * i], b[2 * i], name + " element " + i);
                        assertEquals(a[2 * i + 1], b[2 * i + 1], name + " element " + i);
                    }
                }
            }
        }
        for (String f : List.of("config.json", "tokenizer.json")) {
            assertArrayEquals(Files.readAllBytes(model.resolve(f)), Files.readAllBytes(r.output().resolve(f)), f);
        }
    }

    @Test
    void prunesTheLowestEnergiesOfTheAnalysis() throws Exception {
        Path model = model(Family.QWEN2_MOE);
        JobRunner.JobResult analysis = run("camera-analyze", model, Map.of("alpha", "0.5"), "analysis");
        JobRunner.JobResult pruned = run("camera-p", model, Map.of("ratio", "0.4", "alpha", "0.5"), "pruned");
        ModelSpec spec = ModelSpecs.load(model);
        MoePool pool = MoePool.of(spec, 0);
        double[] energy;
        try (SafetensorsFile f = SafetensorsFile.open(analysis.output().resolve(CameraAnalyze.ENERGIES_FILE));
             HostAllocator alloc = HostAllocator.root().newChild("t", Long.MAX_VALUE)) {
            assertEquals(spec.moeLayers().size(), f.entries().size());
            assertEquals("whittle-camera-energies", f.metadata().get("format"));
            try (var t = f.readFloat(CameraAnalyze.energyTensorName(0), alloc)) {
                assertEquals(DType.F32, f.entry(CameraAnalyze.energyTensorName(0)).dtype());
                energy = new double[(int) t.numel()];
                for (int i = 0; i < energy.length; i++) {
                    energy[i] = t.get(i);
                }
            }
        }
        assertEquals(pool.size(), energy.length);
        boolean[] expected = Selection.lowest(energy, Selection.prunedCount(pool.size(), 0.4));
        try (Checkpoint out = Checkpoint.open(pruned.output())) {
            for (int g = 0; g < pool.groupCount(); g++) {
                byte[] gate = CameraFixtures.bytes(out, pool.groupMlp(g).gate());
                for (int j = 0; j < pool.groupWidth(g); j++) {
                    assertEquals(expected[pool.groupOffset(g) + j], zeroRow(gate, j, pool.hidden(), 2), "pool index "
                            + (pool.groupOffset(g) + j));
                }
            }
        }
        // the analysis writes energies and a report, never a model
        assertFalse(Files.exists(analysis.output().resolve("model.safetensors")));
        assertFalse(Files.exists(analysis.output().resolve("config.json")));
        assertEquals(0.5, analysis.report().get("result").get("alpha").asDouble());
        assertEquals(pool.size(), analysis.report().get("result").get("layers").get(0).get("N_e").asInt());
    }

    @ParameterizedTest
    @EnumSource(value = Family.class, names = {"QWEN2_MOE", "DEEPSEEK", "MIXTRAL"})
    void compactLayoutLoadsBackAndMatchesTheMaskedOne(Family family) throws Exception {
        Path model = model(family);
        Map<String, String> p = new HashMap<>(Map.of("ratio", "0.3", "allocation", "expert-uniform"));
        JobRunner.JobResult masked = run("camera-p", model, p, "uniform-masked");
        p.put("layout", "compact");
        JobRunner.JobResult compact = run("camera-p", model, p, "uniform-compact");
        ModelSpec in = ModelSpecs.load(model);
        ModelSpec out = ModelSpecs.load(compact.output());
        int kept = Selection.keptWidth(16, 0.3); // 16 - 4 = 12
        assertEquals(kept, out.moe().expertIntermediate());
        String widthKey = family == Family.MIXTRAL ? "intermediate_size" : "moe_intermediate_size";
        assertEquals(kept, out.config().get(widthKey).asInt());
        if (family == Family.QWEN2_MOE) {
            assertEquals(32 - (long) (32 * 0.3), out.moe().sharedIntermediate());
            assertEquals(in.intermediateSize(), out.intermediateSize()); // dense width untouched
        } else if (family == Family.DEEPSEEK) {
            assertEquals(2 * kept, out.moe().sharedIntermediate()); // n_shared_experts x moe width
            assertEquals(in.intermediateSize(), out.intermediateSize()); // layer 0 stays dense at its width
        }
        try (Checkpoint c = Checkpoint.open(compact.output()); Checkpoint m = Checkpoint.open(masked.output())) {
            out.requireValid(c);
            // kept channels, in their original order, carry the masked checkpoint's (= the input's) bytes
            for (int l : in.moeLayers()) {
                MoePool pool = MoePool.of(in, l);
                for (int g = 0; g < pool.groupCount(); g++) {
                    Mlp mlp = pool.groupMlp(g);
                    byte[] mg = CameraFixtures.bytes(m, mlp.gate());
                    byte[] cg = CameraFixtures.bytes(c, mlp.gate());
                    int rowBytes = pool.hidden() * 2;
                    int k = 0;
                    for (int j = 0; j < pool.groupWidth(g); j++) {
                        if (!zeroRow(mg, j, pool.hidden(), 2)) {
                            assertArrayEquals(java.util.Arrays.copyOfRange(mg, j * rowBytes, (j + 1) * rowBytes),
                                    java.util.Arrays.copyOfRange(cg, k * rowBytes, (k + 1) * rowBytes), mlp.gate() + " kept row " + j);
                            k++;
                        }
                    }
                    assertEquals(cg.length / rowBytes, k);
                }
            }
            assertTrue(c.totalBytes() < m.totalBytes());
            JsonNode totals = compact.report().get("result").get("totals");
            assertEquals(c.totalBytes(), totals.get("bytes_after").asLong());
            assertEquals(m.totalBytes(), totals.get("bytes_before").asLong());
        }
        // the engine runs the compact checkpoint and gets the masked checkpoint's outputs
        TokenBatch evalTokens = CalibrationData.load(eval, in.vocabSize(), model, null).batch();
        try (CpuBackend backend = new CpuBackend()) {
            PipelineResult rm = Evaluation.evaluate(masked.output(), evalTokens, backend, LayerwisePipeline.Listener.NONE);
            PipelineResult rc = Evaluation.evaluate(compact.output(), evalTokens, backend, LayerwisePipeline.Listener.NONE);
            double[] a = rm.perSequenceMeanNll();
            double[] b = rc.perSequenceMeanNll();
            for (int s = 0; s < a.length; s++) {
                assertEquals(a[s], b[s], 1e-5 * Math.abs(a[s]), "sequence " + s);
            }
        }
    }

    @Test
    void alignRoundsKeptWidthsUpWithTheNextBestMicroExperts() throws Exception {
        Path model = model(Family.QWEN2_MOE);
        Map<String, String> p = new HashMap<>(Map.of("ratio", "0.6", "allocation", "expert-uniform", "layout", "compact",
                "mode", "parallel"));
        JobRunner.JobResult plain = run("camera-p", model, p, "plain");
        p.put("align", "8");
        JobRunner.JobResult aligned = run("camera-p", model, p, "aligned");
        assertEquals(16 - 9, ModelSpecs.load(plain.output()).moe().expertIntermediate());
        assertEquals(8, ModelSpecs.load(aligned.output()).moe().expertIntermediate());
        assertEquals(32 - 19 + 3, ModelSpecs.load(aligned.output()).moe().sharedIntermediate()); // 13 -> 16
        // the aligned expert holds the plain one's channels plus the next best
        ModelSpec spec = ModelSpecs.load(model);
        try (Checkpoint a = Checkpoint.open(aligned.output()); Checkpoint b = Checkpoint.open(plain.output())) {
            for (int l : spec.moeLayers()) {
                for (Mlp mlp : spec.layer(l).moe().experts()) {
                    byte[] wide = CameraFixtures.bytes(a, mlp.gate());
                    byte[] narrow = CameraFixtures.bytes(b, mlp.gate());
                    int rowBytes = spec.hiddenSize() * 2;
                    List<String> wideRows = new ArrayList<>();
                    for (int r = 0; r < wide.length / rowBytes; r++) {
                        wideRows.add(java.util.Arrays.toString(java.util.Arrays.copyOfRange(wide, r * rowBytes, (r + 1) * rowBytes)));
                    }
                    for (int r = 0; r < narrow.length / rowBytes; r++) {
                        assertTrue(wideRows.contains(java.util.Arrays.toString(
                                java.util.Arrays.copyOfRange(narrow, r * rowBytes, (r + 1) * rowBytes))), mlp.gate() + " row " + r);
                    }
                }
            }
        }
    }

    @Test
    void sequentialScoresSeeThePrunedPrefixParallelScoresDoNot() throws Exception {
        Path model = model(Family.OLMOE);
        JsonNode seq = run("camera-p", model, Map.of("ratio", "0.5"), "seq").report().get("result").get("layers");
        JsonNode par = run("camera-p", model, Map.of("ratio", "0.5", "mode", "parallel"), "par").report().get("result").get("layers");
        JsonNode dense = run("camera-analyze", model, Map.of(), "dense").report().get("result").get("layers");
        double total = dense.get(0).get("energy").get("total").asDouble();
        assertEquals(total, seq.get(0).get("energy").get("total").asDouble(), 1e-12 * total);
        assertEquals(total, par.get(0).get("energy").get("total").asDouble(), 1e-12 * total);
        double dense1 = dense.get(1).get("energy").get("total").asDouble();
        assertEquals(dense1, par.get(1).get("energy").get("total").asDouble(), 1e-12 * dense1);
        assertNotEquals(dense1, seq.get(1).get("energy").get("total").asDouble(), 1e-6 * dense1);
    }

    /** The report without what legitimately differs between runs (times, paths, dates). */
    private static JsonNode stable(JsonNode report) {
        ObjectNode r = (ObjectNode) report.deepCopy();
        for (String f : List.of("finished_at", "timings", "model", "calibration", "peak_host_bytes")) {
            r.remove(f);
        }
        strip(r);
        return r;
    }

    private static void strip(JsonNode n) {
        if (n instanceof ObjectNode o) {
            o.remove("seconds");
            o.remove("score_seconds");
            o.properties().forEach(e -> strip(e.getValue()));
        } else if (n.isArray()) {
            n.forEach(CameraJobTest::strip);
        }
    }

    @Test
    void sameInputsGiveByteIdenticalOutputs() throws Exception {
        Path model = model(Family.QWEN2_MOE);
        Map<String, String> p = Map.of("ratio", "0.25", "alpha", "0.9");
        JobRunner.JobResult a = run("camera-p", model, p, "run-a");
        JobRunner.JobResult b = run("camera-p", model, p, "run-b");
        SortedMap<String, byte[]> fa = CameraFixtures.files(a.output());
        SortedMap<String, byte[]> fb = CameraFixtures.files(b.output());
        assertEquals(fa.keySet(), fb.keySet());
        for (String f : fa.keySet()) {
            if (!f.equals("report.json")) {
                assertArrayEquals(fa.get(f), fb.get(f), f);
            }
        }
        assertEquals(stable(a.report()), stable(b.report()));
        assertEquals(io.whittle.methods.Version.get(), a.report().get("whittle_version").asString());
        assertEquals(0.9, a.report().get("params").get("alpha").asDouble());
        assertEquals(0, a.report().get("params").get("seed").asInt());
        JobRunner.JobResult ra = run("camera-analyze", model, Map.of(), "analyze-a");
        JobRunner.JobResult rb = run("camera-analyze", model, Map.of(), "analyze-b");
        assertArrayEquals(Files.readAllBytes(ra.output().resolve(CameraAnalyze.ENERGIES_FILE)),
                Files.readAllBytes(rb.output().resolve(CameraAnalyze.ENERGIES_FILE)));
    }

    @Test
    void baselinesPruneTheSameCountByOtherScores() throws Exception {
        Path model = model(Family.QWEN3_MOE);
        JsonNode energy = run("camera-p", model, Map.of("ratio", "0.25"), "energy").report().get("result");
        JsonNode magnitude = run("camera-p", model, Map.of("ratio", "0.25", "selection", "magnitude"), "magnitude")
                .report().get("result");
        JsonNode random1 = run("camera-p", model, Map.of("ratio", "0.25", "selection", "random", "seed", "1"), "random1")
                .report().get("result");
        JsonNode random2 = run("camera-p", model, Map.of("ratio", "0.25", "selection", "random", "seed", "2"), "random2")
                .report().get("result");
        for (JsonNode r : List.of(energy, magnitude, random1, random2)) {
            assertEquals(energy.get("totals").get("pruned"), r.get("totals").get("pruned"));
        }
        assertEquals("magnitude", magnitude.get("selection").asString());
        assertNotEquals(random1.get("layers").get(0).get("expert_kept_widths"), random2.get("layers").get(0).get("expert_kept_widths"));
        // energy ranking removes the least output energy of the three
        double e = energy.get("layers").get(0).get("energy").get("pruned_energy_fraction").asDouble();
        assertTrue(e < magnitude.get("layers").get(0).get("energy").get("pruned_energy_fraction").asDouble());
        assertTrue(e < random1.get("layers").get(0).get("energy").get("pruned_energy_fraction").asDouble());
    }

    @Test
    void expertsWithoutTokensAreCountedAndHarmless() throws Exception {
        Path model = model(Family.QWEN2_MOE);
        calibration = CameraFixtures.tokens(dir.resolve("three.json"), List.of(new int[] {5, 17, 40}));
        JobRunner.JobResult r = run("camera-p", model, Map.of("ratio", "0.5"), "sparse");
        JsonNode layer0 = r.report().get("result").get("layers").get(0);
        int empty = layer0.get("experts_without_tokens").asInt();
        assertTrue(empty >= 2, "3 tokens, top-2 of 8 experts");
        int zeroTokens = 0;
        for (JsonNode c : layer0.get("tokens_per_expert")) {
            zeroTokens += c.asLong() == 0 ? 1 : 0;
        }
        assertEquals(empty, zeroTokens);
        assertTrue(Double.isFinite(layer0.get("relative_error").asDouble()));
        assertTrue(r.report().get("result").get("totals").get("experts_without_tokens").asInt() >= empty);
        // an expert nobody was routed to has energy 0 everywhere: it is pruned first, whole
        assertTrue(layer0.get("experts_fully_pruned").asInt() >= 1);
    }

    @Test
    void badRequestsFailBeforeAnyWorkAndLeaveNoOutput() throws Exception {
        Path model = model(Family.QWEN2_MOE);
        Path out = dir.resolve("never");
        InvalidParametersException e = assertThrows(InvalidParametersException.class,
                () -> run("camera-p", model, Map.of("ratio", "1.0"), "never"));
        assertEquals("invalid parameters for camera-p: params.ratio: value 1.0 is out of range (0 <= ratio < 1)", e.getMessage());
        e = assertThrows(InvalidParametersException.class, () -> run("camera-p", model, Map.of("ratio", "-0.1"), "never"));
        assertTrue(e.getMessage().contains("params.ratio: value -0.1 is out of range (0 <= ratio < 1)"));
        e = assertThrows(InvalidParametersException.class, () -> run("camera-p", model, Map.of("alpha", "1.5"), "never"));
        assertTrue(e.getMessage().contains("params.alpha"));
        IllegalArgumentException ie = assertThrows(IllegalArgumentException.class,
                () -> run("camera-p", model, Map.of("layout", "compact"), "never"));
        assertEquals("camera-p: layout=compact needs allocation=expert-uniform (allocation=layer leaves experts of different "
                + "widths, which config.json cannot express)", ie.getMessage());
        ie = assertThrows(IllegalArgumentException.class, () -> run("camera-p", model, Map.of("align", "64"), "never"));
        assertEquals("camera-p: align applies only to layout=compact", ie.getMessage());
        ie = assertThrows(IllegalArgumentException.class, () -> run("camera-x", model, Map.of(), "never"));
        assertTrue(ie.getMessage().startsWith("unknown method 'camera-x'; available: "), ie.getMessage());
        Path dense = dir.resolve("llama");
        SyntheticModels.write(new SyntheticModels.Request(Family.LLAMA, 1, 32, 48, 0, 0, 0, 0, 4, 2, 64, 1, DType.BF16, 1), dense);
        ie = assertThrows(IllegalArgumentException.class, () -> run("camera-p", dense, Map.of(), "never"));
        assertTrue(ie.getMessage().startsWith("camera-p does not apply to llama models"), ie.getMessage());
        ie = assertThrows(IllegalArgumentException.class, () -> run("camera-analyze", dense, Map.of(), "never"));
        assertTrue(ie.getMessage().startsWith("camera-analyze does not apply to llama models"), ie.getMessage());
        assertFalse(Files.exists(out));
    }

    @Test
    void aDenseConfigOfAnMoeFamilyIsRejectedByTheMethod() {
        ObjectNode config = SyntheticModels.config(CameraFixtures.tiny(Family.DEEPSEEK, 1));
        config.putNull("n_routed_experts"); // DeepSeek without routed experts: every layer dense
        ModelSpec spec = ModelSpecs.fromConfig(config, "test");
        var params = io.whittle.methods.MethodParams.validate(new CameraPrune().descriptor(), Map.of());
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> new CameraPrune().check(params, spec));
        assertEquals("camera-p needs an MoE model (micro-experts are channels of routed experts); this deepseek config has "
                + "no MoE layers", e.getMessage());
    }

    @Test
    void aFailedRunLeavesNoOutputDirectory() throws Exception {
        Path model = model(Family.QWEN2_MOE);
        Path out = dir.resolve("cancelled");
        AtomicInteger checks = new AtomicInteger();
        JobRunner.Prepared job = JobRunner.prepare(new JobRequest("camera-p", model, calibration, null, Map.of("ratio", "0.2"),
                out, "cpu", null));
        assertThrows(CancellationException.class, () -> job.run(null, () -> checks.incrementAndGet() > 1)); // after layer 0
        assertFalse(Files.exists(out));
        try (var s = Files.list(dir)) {
            assertTrue(s.noneMatch(p -> p.getFileName().toString().contains("whittle-tmp")), "no staging directory left");
        }
    }
}
