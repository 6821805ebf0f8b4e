package io.whittle.methods.wgsef;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.whittle.compute.cpu.CpuBackend;
import io.whittle.forward.Evaluation;
import io.whittle.forward.LayerwisePipeline;
import io.whittle.forward.TokenBatch;
import io.whittle.methods.JobRequest;
import io.whittle.methods.JobRunner;
import io.whittle.model.Checkpoint;
import io.whittle.model.ModelSpec.Family;
import io.whittle.model.SyntheticModels;
import io.whittle.model.safetensors.TensorEntry;
import io.whittle.tensor.DType;
import io.whittle.tensor.FloatTensor;
import io.whittle.tensor.HostAllocator;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import tools.jackson.databind.JsonNode;

/** The {@code wgsef} job end to end on tiny synthetic models. */
class WgsefMethodTest {

    @TempDir
    static Path dir;
    static Path model;
    static Path calibration;
    static Path eval;

    @BeforeAll
    static void setUp() throws Exception {
        model = dir.resolve("model");
        SyntheticModels.write(new SyntheticModels.Request(Family.QWEN2_MOE, 2, 64, 96, 4, 2, 32, 64, 4, 2, 128, 5, DType.BF16, 2),
                model);
        calibration = dir.resolve("calib.json");
        eval = dir.resolve("eval.json");
        Files.writeString(calibration, tokens(6, 48, 1));
        Files.writeString(eval, tokens(3, 24, 2));
    }

    static String tokens(int n, int len, long seed) {
        Random r = new Random(seed);
        StringBuilder sb = new StringBuilder("{\"input_ids\": [");
        for (int s = 0; s < n; s++) {
            sb.append(s == 0 ? "[" : ", [");
            for (int i = 0; i < len; i++) {
                sb.append(i == 0 ? "" : ", ").append(r.nextInt(128));
            }
            sb.append(']');
        }
        return sb.append("]}").toString();
    }

    static JsonNode run(Path out, Map<String, String> params) throws Exception {
        JobRequest req = new JobRequest("wgsef", model, calibration, null, params, out, "cpu", null);
        return JobRunner.prepare(req).run(null, null).report();
    }

    static float[] read(Path modelDir, String tensor) {
        try (Checkpoint c = Checkpoint.open(modelDir); FloatTensor t = c.readFloat(tensor, HostAllocator.root())) {
            return t.toArray();
        }
    }

    /** Counts non-zero groups of a [rows, cols] matrix tiled in tileRows x tileCols blocks. */
    static int nonzeroTiles(float[] w, int rows, int cols, int tileRows, int tileCols) {
        int count = 0;
        for (int r0 = 0; r0 < rows; r0 += tileRows) {
            for (int c0 = 0; c0 < cols; c0 += tileCols) {
                boolean nz = false;
                for (int r = r0; r < r0 + tileRows && !nz; r++) {
                    for (int c = c0; c < c0 + tileCols && !nz; c++) {
                        nz = w[r * cols + c] != 0f;
                    }
                }
                count += nz ? 1 : 0;
            }
        }
        return count;
    }

    @Test
    void everyGroupTypeEndsWithExactlyKNonZeroGroups() throws Exception {
        String expert = "model.layers.1.mlp.experts.2.";
        // columns: expert gate [32, 64] keeps ceil(0.25 * 64) = 16 input columns
        run(dir.resolve("cols"), Map.of("groups", "columns", "keep", "0.25"));
        assertThat(nonzeroTiles(read(dir.resolve("cols"), expert + "gate_proj.weight"), 32, 64, 32, 1)).isEqualTo(16);
        assertThat(nonzeroTiles(read(dir.resolve("cols"), expert + "down_proj.weight"), 64, 32, 64, 1)).isEqualTo(8);
        // rows
        run(dir.resolve("rows"), Map.of("groups", "rows", "keep", "5"));
        assertThat(nonzeroTiles(read(dir.resolve("rows"), expert + "up_proj.weight"), 32, 64, 1, 64)).isEqualTo(5);
        // heads of q (4 heads of 16 rows) and o_proj (head columns); k/v have 2 heads -> keep 1
        run(dir.resolve("heads"), Map.of("groups", "heads", "keep", "0.5", "targets", ".*self_attn\\.[qkvo]_proj\\.weight"));
        assertThat(nonzeroTiles(read(dir.resolve("heads"), "model.layers.0.self_attn.q_proj.weight"), 64, 64, 16, 64)).isEqualTo(2);
        assertThat(nonzeroTiles(read(dir.resolve("heads"), "model.layers.0.self_attn.k_proj.weight"), 32, 64, 16, 64)).isEqualTo(1);
        assertThat(nonzeroTiles(read(dir.resolve("heads"), "model.layers.0.self_attn.o_proj.weight"), 64, 64, 64, 16)).isEqualTo(2);
        // blocks
        run(dir.resolve("blocks"), Map.of("groups", "blocks:8x16", "keep", "3"));
        assertThat(nonzeroTiles(read(dir.resolve("blocks"), expert + "gate_proj.weight"), 32, 64, 8, 16)).isEqualTo(3);
        // N:M: every row keeps 2 of every 4 consecutive inputs
        run(dir.resolve("nm"), Map.of("groups", "nm:2:4"));
        float[] w = read(dir.resolve("nm"), expert + "gate_proj.weight");
        for (int r = 0; r < 32; r++) {
            for (int c0 = 0; c0 < 64; c0 += 4) {
                assertThat(nonzeroTiles(java.util.Arrays.copyOfRange(w, r * 64 + c0, r * 64 + c0 + 4), 1, 4, 1, 1)).isEqualTo(2);
            }
        }
        // mlp-channels: gate row j, up row j and down column j vanish together; 12 of 32 channels survive
        run(dir.resolve("mlp"), Map.of("groups", "mlp-channels", "keep", "12"));
        float[] g = read(dir.resolve("mlp"), expert + "gate_proj.weight");
        float[] u = read(dir.resolve("mlp"), expert + "up_proj.weight");
        float[] d = read(dir.resolve("mlp"), expert + "down_proj.weight");
        int alive = 0;
        for (int j = 0; j < 32; j++) {
            boolean gz = nonzeroTiles(java.util.Arrays.copyOfRange(g, j * 64, j * 64 + 64), 1, 64, 1, 64) == 0;
            boolean uz = nonzeroTiles(java.util.Arrays.copyOfRange(u, j * 64, j * 64 + 64), 1, 64, 1, 64) == 0;
            float[] col = new float[64];
            for (int r = 0; r < 64; r++) {
                col[r] = d[r * 32 + j];
            }
            boolean dz = nonzeroTiles(col, 64, 1, 64, 1) == 0;
            assertThat(gz).isEqualTo(uz).isEqualTo(dz);
            alive += gz ? 0 : 1;
        }
        assertThat(alive).isEqualTo(12);
    }

    @Test
    void layerwiseBeatsMagnitudeAndReportsThePath() throws Exception {
        JsonNode report = run(dir.resolve("report"), Map.of("groups", "columns", "keep", "0.5"));
        JsonNode summary = report.get("result").get("summary");
        assertThat(summary.get("mean_relative_error").asDouble()).isLessThan(summary.get("mean_relative_error_magnitude").asDouble());
        JsonNode first = report.get("result").get("matrices").get(0);
        assertThat(first.get("kept").asInt()).isEqualTo(first.get("k").asInt());
        assertThat(first.get("lambda_path").size()).isGreaterThan(1);
        assertThat(first.has("gap_held")).isTrue();
        assertThat(first.get("relative_error").asDouble()).isBetween(0.0, 1.5);
    }

    @Test
    void maskedLeavesUntouchedTensorsByteIdenticalAndRunsAreDeterministic() throws Exception {
        Path a = dir.resolve("det-a");
        Path b = dir.resolve("det-b");
        run(a, Map.of("keep", "0.5"));
        run(b, Map.of("keep", "0.5"));
        try (Checkpoint in = Checkpoint.open(model); Checkpoint ca = Checkpoint.open(a); Checkpoint cb = Checkpoint.open(b)) {
            assertThat(ca.tensorNames()).containsExactlyInAnyOrderElementsOf(in.tensorNames());
            for (String name : in.tensorNames()) {
                byte[] x = bytes(ca, name);
                assertThat(x).as("deterministic %s", name).isEqualTo(bytes(cb, name));
                assertThat(ca.entry(name).dtype()).isEqualTo(in.entry(name).dtype());
                assertThat(ca.entry(name).shape()).isEqualTo(in.entry(name).shape());
                boolean target = name.matches(WgsefMethod.DEFAULT_TARGETS);
                if (!target) {
                    assertThat(x).as("untouched %s", name).isEqualTo(bytes(in, name));
                }
            }
        }
    }

    static byte[] bytes(Checkpoint c, String name) {
        TensorEntry e = c.entry(name);
        ByteBuffer buf = ByteBuffer.allocate((int) e.byteLength());
        c.file(name).readBytes(e, 0, buf);
        return buf.array();
    }

    @Test
    void compactLayoutLoadsBackWithTheSameOutputsAsMasked() throws Exception {
        Path masked = dir.resolve("cmp-masked");
        Path compact = dir.resolve("cmp-compact");
        run(masked, Map.of("keep", "12"));
        run(compact, Map.of("keep", "12", "layout", "compact"));
        JsonNode config = tools.jackson.databind.json.JsonMapper.builder().build().readTree(Files.readString(compact.resolve("config.json")));
        assertThat(config.get("moe_intermediate_size").asInt()).isEqualTo(12);
        assertThat(config.get("shared_expert_intermediate_size").asInt()).as("a keep count applies to every MLP").isEqualTo(12);
        List<int[]> seqs = new ArrayList<>();
        seqs.add(new int[] {1, 7, 9, 30, 2, 100, 5, 6});
        seqs.add(new int[] {3, 3, 90, 17});
        try (CpuBackend cpu = new CpuBackend()) {
            double m = Evaluation.evaluate(masked, new TokenBatch(seqs), cpu, LayerwisePipeline.Listener.NONE).meanNll();
            double c = Evaluation.evaluate(compact, new TokenBatch(seqs), cpu, LayerwisePipeline.Listener.NONE).meanNll();
            assertThat(c).isCloseTo(m, org.assertj.core.data.Offset.offset(1e-5 * Math.abs(m)));
        }
    }

    @Test
    void badParametersFailBeforeWorkAndLeaveNoOutput() {
        Path out = dir.resolve("bad");
        assertThatThrownBy(() -> run(out, Map.of("keep", "0"))).hasMessageContaining("keep");
        assertThatThrownBy(() -> run(out, Map.of("keep", "1.5"))).hasMessageContaining("keep");
        assertThatThrownBy(() -> run(out, Map.of("keep", "1000"))).hasMessageContaining("keep").hasMessageContaining("exceeds");
        assertThatThrownBy(() -> run(out, Map.of("groups", "blocks:5x5"))).hasMessageContaining("does not divide");
        assertThatThrownBy(() -> run(out, Map.of("groups", "diagonal"))).hasMessageContaining("groups");
        assertThatThrownBy(() -> run(out, Map.of("targets", "[unclosed"))).hasMessageContaining("targets");
        assertThatThrownBy(() -> run(out, Map.of("targets", ".*router.*"))).hasMessageContaining("matches no");
        assertThatThrownBy(() -> run(out, Map.of("groups", "columns", "layout", "compact"))).hasMessageContaining("compact");
        assertThat(out).doesNotExist();
    }
}
