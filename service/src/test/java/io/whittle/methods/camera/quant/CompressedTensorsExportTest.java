package io.whittle.methods.camera.quant;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.whittle.model.Checkpoint;
import io.whittle.model.safetensors.SafetensorsWriter;
import io.whittle.model.safetensors.TensorSource;
import io.whittle.tensor.DType;
import io.whittle.tensor.FloatTensor;
import io.whittle.tensor.Shape;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;

class CompressedTensorsExportTest {

    private static final JsonMapper JSON = JsonMapper.builder().build();

    @TempDir
    Path dir;

    private static JsonNode fixture(String name) throws Exception {
        try (InputStream in = CompressedTensorsExportTest.class.getResourceAsStream("/fixtures/compressed-tensors/" + name)) {
            return JSON.readTree(in).get("quantization_config");
        }
    }

    private static List<String> strings(JsonNode array) {
        List<String> out = new ArrayList<>();
        array.forEach(n -> out.add(n.stringValue()));
        return out;
    }

    private static void assertKeysSorted(JsonNode node) {
        if (node.isObject()) {
            List<String> names = new ArrayList<>(node.propertyNames());
            assertThat(names).isSorted();
            node.properties().forEach(e -> assertKeysSorted(e.getValue()));
        }
    }

    @Test
    void quantizationConfigMatchesTheLlmCompressorW4A16Fixture() throws Exception {
        JsonNode expected = fixture("qwen3-30b-a3b-w4a16.config.example.json");
        JsonNode got = CompressedTensorsExport.quantizationConfig(new QuantScheme(4, 128, true, ScaleFormat.BF16), DType.BF16,
                List.of("Linear"), strings(expected.get("ignore")));
        assertThat(got).isEqualTo(expected);
        assertKeysSorted(got);
    }

    @Test
    void quantizationConfigMatchesTheW2A16G64Fixture() throws Exception {
        JsonNode expected = fixture("w2a16-g64.quantization_config.example.json");
        JsonNode got = CompressedTensorsExport.quantizationConfig(new QuantScheme(2, 64, true, ScaleFormat.BF16), DType.BF16,
                List.of("Linear"), strings(expected.get("ignore")));
        assertThat(got).isEqualTo(expected);
    }

    @Test
    void asymmetricSchemeSaysSo() {
        JsonNode got = CompressedTensorsExport.quantizationConfig(new QuantScheme(4, 128, false, ScaleFormat.BF16), DType.BF16,
                List.of("Linear"), List.of("lm_head"));
        assertThat(got.at("/config_groups/group_0/weights/symmetric").booleanValue()).isFalse();
        assertThat(strings(got.get("ignore"))).containsExactly("lm_head");
    }

    @Test
    void handPackedTensors() throws Exception {
        QuantLayout l = QuantLayout.uniform(1, 16, new QuantScheme(4, 16, true, ScaleFormat.BF16));
        byte[] q = new byte[16];
        for (int i = 0; i < 16; i++) {
            q[i] = (byte) (i - 8);
        }
        QuantizedMatrix m = new QuantizedMatrix(l, q, new float[]{0.5f}, null);
        List<TensorSource> t = CompressedTensorsExport.tensors("model.layers.0.mlp.experts.0.down_proj", m);
        assertThat(t).extracting(TensorSource::name).containsExactly("model.layers.0.mlp.experts.0.down_proj.weight_packed",
                "model.layers.0.mlp.experts.0.down_proj.weight_scale", "model.layers.0.mlp.experts.0.down_proj.weight_shape");
        assertThat(t).extracting(TensorSource::dtype).containsExactly(DType.I32, DType.BF16, DType.I64);
        assertThat(t).extracting(TensorSource::shape).containsExactly(Shape.of(1, 2), Shape.of(1, 1), Shape.of(2));
        ByteBuffer packed = bytes(t.get(0));
        assertThat(packed.getInt(0)).isEqualTo(0x76543210);
        assertThat(packed.getInt(4)).isEqualTo(0xFEDCBA98);
        assertThat(bytes(t.get(1)).getShort(0)).isEqualTo((short) 0x3F00); // bf16 0.5
        assertThat(bytes(t.get(2)).getLong(0)).isEqualTo(1L);
        assertThat(bytes(t.get(2)).getLong(8)).isEqualTo(16L);
    }

    private static ByteBuffer bytes(TensorSource s) throws Exception {
        ByteBuffer all = ByteBuffer.allocate((int) s.byteLength()).order(ByteOrder.LITTLE_ENDIAN);
        s.writeTo(all::put);
        return all.flip();
    }

    @Test
    void writtenFilesReadBackAndDecodeLikeTheReferenceDequantizer() throws Exception {
        Random rnd = new Random(17);
        int rows = 40;
        int cols = 256;
        for (boolean sym : new boolean[]{true, false}) {
            QuantScheme scheme = new QuantScheme(4, 128, sym, ScaleFormat.BF16);
            QuantizedMatrix m;
            try (FloatTensor w = QuantTestData.tensor(QuantTestData.weights(rnd, rows, cols), rows, cols)) {
                m = RtnQuantizer.quantize(w, QuantLayout.uniform(rows, cols, scheme));
            }
            String prefix = "model.layers.3.mlp.experts.7.gate_proj";
            List<TensorSource> t = CompressedTensorsExport.tensors(prefix, m);
            if (!sym) {
                assertThat(t).extracting(TensorSource::name).contains(prefix + ".weight_zero_point");
                assertThat(t.stream().filter(s -> s.name().endsWith("zero_point")).findFirst().orElseThrow().shape())
                        .isEqualTo(Shape.of(5, 2)); // ceil(40 / 8) x 256 / 128
            }
            Path file = dir.resolve("model-" + sym + ".safetensors");
            SafetensorsWriter.write(file, t, Map.of("format", "pt"));
            try (Checkpoint c = Checkpoint.open(file)) {
                QuantizedMatrix back = CompressedTensorsExport.read(c, prefix, scheme);
                assertThat(back).isEqualTo(m);
                // decode the raw file like unpack_from_int32 + (q - zp) * scale, independently of BitPacking
                long[] packed = c.readLongs(prefix + ".weight_packed");
                float[] deq = QuantTestData.dequantized(m);
                try (FloatTensor scales = c.readFloat(prefix + ".weight_scale", io.whittle.tensor.HostAllocator.root())) {
                    long[] zp = sym ? null : c.readLongs(prefix + ".weight_zero_point");
                    for (int r = 0; r < rows; r++) {
                        for (int col = 0; col < cols; col++) {
                            int word = (int) packed[r * (cols / 8) + col / 8];
                            int qv = ((word >> (4 * (col % 8))) & 0xF) - 8;
                            int g = col / 128;
                            int z = sym ? 0 : (((int) zp[(r / 8) * 2 + g] >> (4 * (r % 8))) & 0xF) - 8;
                            assertThat((qv - z) * scales.get(r * 2L + g)).isEqualTo(deq[r * cols + col]);
                        }
                    }
                }
            }
        }
    }

    @Test
    void unsupportedMatricesAreClearErrors() {
        QuantLayout mixed = QuantLayout.rowBits(16, new int[]{4, 2}, 16, true, ScaleFormat.BF16);
        assertThatThrownBy(() -> CompressedTensorsExport.tensors("p", new QuantizedMatrix(mixed, new byte[32], new float[]{1f, 1f}, null)))
                .hasMessageStartingWith("compressed-tensors needs one bit width per matrix");
        QuantLayout ragged = QuantLayout.uniform(1, 24, new QuantScheme(4, 16, true, ScaleFormat.BF16));
        assertThatThrownBy(() -> CompressedTensorsExport.tensors("p", new QuantizedMatrix(ragged, new byte[24], new float[]{1f, 1f}, null)))
                .hasMessage("compressed-tensors needs whole groups: group_size 16 does not divide the input dimension 24");
        assertThatThrownBy(() -> CompressedTensorsExport.quantizationConfig(new QuantScheme(4, 128, true, ScaleFormat.F16), DType.BF16,
                List.of("Linear"), List.of()))
                .hasMessage("compressed-tensors stores scales in the weight dtype BF16 but the scheme's scales are F16");
    }
}
