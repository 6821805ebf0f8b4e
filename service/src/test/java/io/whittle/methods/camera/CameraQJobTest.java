package io.whittle.methods.camera;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.whittle.methods.InvalidParametersException;
import io.whittle.methods.JobRunner;
import io.whittle.methods.camera.quant.BitAllocation;
import io.whittle.methods.camera.quant.BitBudget;
import io.whittle.methods.camera.quant.CompressedTensorsExport;
import io.whittle.methods.camera.quant.PackedFormat;
import io.whittle.methods.camera.quant.QuantScheme;
import io.whittle.methods.camera.quant.QuantizedExpert;
import io.whittle.methods.camera.quant.QuantizedMatrix;
import io.whittle.methods.camera.quant.ScaleFormat;
import io.whittle.model.Checkpoint;
import io.whittle.model.ModelSpec;
import io.whittle.model.ModelSpec.Family;
import io.whittle.model.ModelSpec.Mlp;
import io.whittle.model.ModelSpecs;
import io.whittle.model.safetensors.SafetensorsFile;
import io.whittle.tensor.DType;
import io.whittle.tensor.FloatFormats;
import io.whittle.tensor.FloatTensor;
import io.whittle.tensor.HostAllocator;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.SortedMap;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import tools.jackson.databind.JsonNode;

/** camera-q through the JobRunner: the three exports, the bit assignment, GPTQ against RTN, and bad requests. */
class CameraQJobTest {

    @TempDir
    Path dir;
    Path calibration;
    Path eval;

    @BeforeEach
    void tokens() {
        calibration = CameraFixtures.randomTokens(dir.resolve("calib.json"), 4, 24, 64, 31);
        eval = CameraFixtures.randomTokens(dir.resolve("eval.json"), 2, 16, 64, 32);
    }

    private Path model(Family family) {
        return CameraFixtures.model(dir, family, 9);
    }

    private JobRunner.JobResult run(Path model, Map<String, String> params, String out, boolean withEval) throws Exception {
        Map<String, String> p = new HashMap<>(Map.of("group_size", "16"));
        p.putAll(params);
        return CameraFixtures.run("camera-q", model, calibration, withEval ? eval : null, p, dir.resolve(out));
    }

    private static int[] widthsInPoolOrder(Checkpoint packed, MoePool pool) {
        int[] w = new int[pool.size()];
        for (int g = 0; g < pool.groupCount(); g++) {
            String prefix = CameraQuantize.expertPrefix(pool.groupMlp(g).gate());
            QuantizedExpert e = PackedFormat.read(packed, prefix);
            int[] sorted = e.permutation().sortedBits();
            int[] inv = e.permutation().inverse();
            for (int j = 0; j < pool.groupWidth(g); j++) {
                w[pool.groupOffset(g) + j] = sorted[inv[j]];
            }
        }
        return w;
    }

    @Test
    void packedExportDecodesToTheDequantizedExportAndFollowsTheEnergyRanking() throws Exception {
        Path model = model(Family.QWEN2_MOE);
        ModelSpec spec = ModelSpecs.load(model);
        JobRunner.JobResult packed = run(model, Map.of(), "packed", true);
        JobRunner.JobResult deq = run(model, Map.of("export", "dequantized"), "dequantized", false);
        JobRunner.JobResult analysis = CameraFixtures.run("camera-analyze", model, calibration, null, Map.of(), dir.resolve("an"));
        try (Checkpoint in = Checkpoint.open(model); Checkpoint p = Checkpoint.open(packed.output());
             Checkpoint d = Checkpoint.open(deq.output());
             HostAllocator alloc = HostAllocator.root().newChild("t", Long.MAX_VALUE)) {
            // the dequantized export keeps every name, shape and dtype
            assertEquals(in.tensorNames(), d.tensorNames());
            for (String n : in.tensorNames()) {
                assertEquals(in.entry(n).shape(), d.entry(n).shape());
                assertEquals(in.entry(n).dtype(), d.entry(n).dtype());
            }
            for (int l : spec.moeLayers()) {
                MoePool pool = MoePool.of(spec, l);
                for (int g = 0; g < pool.groupCount(); g++) {
                    Mlp mlp = pool.groupMlp(g);
                    String prefix = CameraQuantize.expertPrefix(mlp.gate());
                    assertEquals(PackedFormat.FORMAT, p.file(prefix + ".camera_perm").metadata().get(PackedFormat.META_FORMAT));
                    Map<String, FloatTensor> decoded = PackedFormat.dequantize(p, prefix, alloc);
                    try {
                        for (String name : mlp.all()) {
                            assertFalse(p.contains(name), name + " is replaced by packed tensors");
                            float[] exact = decoded.get(name).toArray();
                            try (FloatTensor stored = d.readFloat(name, alloc)) {
                                for (int i = 0; i < exact.length; i++) {
                                    assertEquals(FloatFormats.roundToBf16(exact[i]), stored.get(i), name + " element " + i);
                                }
                            }
                        }
                    } finally {
                        decoded.values().forEach(FloatTensor::close);
                    }
                    // slices of one width each, highest first: no group mixes widths
                    int[] sliceBits = PackedFormat.read(p, prefix).permutation().sliceBits();
                    for (int s = 1; s < sliceBits.length; s++) {
                        assertTrue(sliceBits[s] < sliceBits[s - 1]);
                    }
                }
            }
            // everything but the experts is byte-identical to the input
            for (String n : in.tensorNames()) {
                if (p.contains(n)) {
                    assertArrayEquals(CameraFixtures.bytes(in, n), CameraFixtures.bytes(p, n), n);
                }
            }
            // layer 0: widths by energy rank within the layer (same energies as camera-analyze: same inputs)
            MoePool pool = MoePool.of(spec, 0);
            float[] energy;
            try (SafetensorsFile f = SafetensorsFile.open(analysis.output().resolve(CameraAnalyze.ENERGIES_FILE));
                 FloatTensor t = f.readFloat(CameraAnalyze.energyTensorName(0), alloc)) {
                energy = t.toArray();
            }
            BitAllocation allocation = BitAllocation.defaults();
            assertArrayEquals(allocation.assign(energy), widthsInPoolOrder(p, pool));
            JsonNode layer0 = packed.report().get("result").get("layers").get(0);
            long[] counts = allocation.classCounts(pool.size());
            assertEquals(counts[0], layer0.get("class_counts").get("3").asLong());
            assertEquals(counts[1], layer0.get("class_counts").get("2").asLong());
            assertEquals(counts[2], layer0.get("class_counts").get("1").asLong());
        }
        JsonNode totals = packed.report().get("result").get("totals");
        assertEquals(BitBudget.payloadForCounts(BitAllocation.defaults(), BitAllocation.defaults().classCounts(160)),
                totals.get("achieved_bpw").get("payload_bpw").asDouble(), 1e-12);
        assertTrue(totals.get("achieved_bpw").get("with_overhead_bpw").asDouble() > 2.25); // short down_proj groups
        assertTrue(totals.get("bytes_after").asLong() < totals.get("bytes_before").asLong());
        // perplexity after a packed export is measured on what it decodes to
        JsonNode ev = packed.report().get("eval");
        assertTrue(Double.isFinite(ev.get("after").get("perplexity").asDouble()));
        try (var s = Files.list(dir)) {
            assertTrue(s.noneMatch(x -> x.getFileName().toString().contains("whittle-tmp")), "the evaluation twin is gone");
        }
    }

    @Test
    void gptqBeatsRtnOnTheBlockOutputAtTheSameWidths() throws Exception {
        Path model = model(Family.MIXTRAL);
        JsonNode gptq = run(model, Map.of("mode", "parallel", "export", "dequantized"), "gptq", false).report().get("result");
        JsonNode rtn = run(model, Map.of("mode", "parallel", "quantizer", "rtn", "export", "dequantized"), "rtn", false)
                .report().get("result");
        for (int l = 0; l < 2; l++) {
            double g = gptq.get("layers").get(l).get("relative_error").asDouble();
            double r = rtn.get("layers").get(l).get("relative_error").asDouble();
            assertTrue(g > 0 && g < r, "layer " + l + ": gptq " + g + " vs rtn " + r);
            assertEquals(gptq.get("layers").get(l).get("class_counts"), rtn.get("layers").get(l).get("class_counts"));
        }
    }

    @Test
    void compressedTensorsExportForOneWidth() throws Exception {
        Path model = model(Family.DEEPSEEK);
        ModelSpec spec = ModelSpecs.load(model);
        JobRunner.JobResult r = run(model, Map.of("bits", "4", "export", "compressed-tensors"), "ct", true);
        JsonNode config = ModelSpecs.load(r.output()).config();
        JsonNode qc = config.get("quantization_config");
        assertEquals("compressed-tensors", qc.get("quant_method").asString());
        assertEquals(4, qc.get("config_groups").get("group_0").get("weights").get("num_bits").asInt());
        assertEquals(16, qc.get("config_groups").get("group_0").get("weights").get("group_size").asInt());
        List<String> ignore = qc.get("ignore").valueStream().map(JsonNode::asString).toList();
        assertTrue(ignore.contains("lm_head"));
        assertTrue(ignore.contains("model.layers.1.mlp.gate"));
        assertTrue(ignore.contains("model.layers.0.mlp.gate_proj")); // the dense layer stays bf16
        assertTrue(ignore.contains("model.layers.1.self_attn.q_proj"));
        QuantScheme scheme = new QuantScheme(4, 16, false, ScaleFormat.BF16);
        try (Checkpoint in = Checkpoint.open(model); Checkpoint out = Checkpoint.open(r.output())) {
            MoePool pool = MoePool.of(spec, 1);
            for (int g = 0; g < pool.groupCount(); g++) {
                for (String w : pool.groupMlp(g).all()) {
                    String prefix = w.substring(0, w.length() - ".weight".length());
                    assertFalse(out.contains(w));
                    assertEquals(DType.I32, out.entry(prefix + ".weight_packed").dtype());
                    assertEquals(DType.BF16, out.entry(prefix + ".weight_scale").dtype());
                    QuantizedMatrix m = CompressedTensorsExport.read(out, prefix, scheme);
                    assertEquals(in.entry(w).shape().dim(0), m.rows());
                    assertEquals(in.entry(w).shape().dim(1), m.cols());
                }
            }
            for (String n : List.of("model.layers.1.mlp.gate.weight", "model.layers.0.mlp.down_proj.weight", "lm_head.weight",
                    "model.layers.1.self_attn.q_proj.weight")) {
                assertArrayEquals(CameraFixtures.bytes(in, n), CameraFixtures.bytes(out, n), n);
            }
        }
        assertTrue(Double.isFinite(r.report().get("eval").get("after").get("perplexity").asDouble()));
        assertEquals(4.0, r.report().get("result").get("totals").get("achieved_bpw").get("payload_bpw").asDouble(), 1e-12);
    }

    @Test
    void expertsWithoutTokensFallBackToRtnAndStayFinite() throws Exception {
        Path model = model(Family.QWEN3_MOE);
        calibration = CameraFixtures.tokens(dir.resolve("three.json"), List.of(new int[] {3, 9, 27}));
        JobRunner.JobResult r = run(model, Map.of("export", "dequantized"), "sparse", false);
        JsonNode layer0 = r.report().get("result").get("layers").get(0);
        int empty = layer0.get("experts_without_tokens").asInt();
        assertTrue(empty >= 2);
        assertEquals(empty, layer0.get("gptq_fallbacks").asInt());
        // counted per matrix: gate, up and down of each empty expert
        assertEquals(3 * empty, layer0.get("fallback_reasons").get("no calibration tokens").asInt());
        assertTrue(Double.isFinite(layer0.get("relative_error").asDouble()));
        try (Checkpoint out = Checkpoint.open(r.output());
             HostAllocator alloc = HostAllocator.root().newChild("t", Long.MAX_VALUE)) {
            for (String n : out.tensorNames()) {
                try (FloatTensor t = out.readFloat(n, alloc)) {
                    for (float v : t.toArray()) {
                        assertTrue(Float.isFinite(v), n);
                    }
                }
            }
        }
    }

    @Test
    void sameInputsGiveByteIdenticalPackedOutputs() throws Exception {
        Path model = model(Family.OLMOE);
        SortedMap<String, byte[]> a = CameraFixtures.files(run(model, Map.of(), "a", false).output());
        SortedMap<String, byte[]> b = CameraFixtures.files(run(model, Map.of(), "b", false).output());
        assertEquals(a.keySet(), b.keySet());
        for (String f : a.keySet()) {
            if (!f.equals("report.json")) {
                assertArrayEquals(a.get(f), b.get(f), f);
            }
        }
    }

    @Test
    void badRequestsFailBeforeAnyWork() throws Exception {
        Path model = model(Family.QWEN2_MOE);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> run(model, Map.of("fractions", "0.2,0.7,0.2"), "never", false));
        assertEquals("camera-q: fractions must sum to 1, got 1.0999999999999999 ([0.2, 0.7, 0.2])", e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> run(model, Map.of("group_size", "128"), "never", false));
        assertEquals("camera-q: group_size 128 does not divide hidden_size (32)", e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> run(model, Map.of("export", "compressed-tensors"), "never", false));
        assertTrue(e.getMessage().startsWith("camera-q: export=compressed-tensors needs one width for every micro-expert"),
                e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> run(model, Map.of("bits", "4,2"), "never", false));
        assertEquals("camera-q: bits=4,2 needs fractions (one per width)", e.getMessage());
        InvalidParametersException ip = assertThrows(InvalidParametersException.class,
                () -> run(model, Map.of("bits", "9"), "never", false));
        assertTrue(ip.getMessage().contains("params.bits: value 9 is out of range"), ip.getMessage());
        assertFalse(Files.exists(dir.resolve("never")));
    }
}
