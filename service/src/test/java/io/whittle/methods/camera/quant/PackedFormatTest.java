package io.whittle.methods.camera.quant;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.whittle.model.Checkpoint;
import io.whittle.model.CheckpointWriter;
import io.whittle.model.safetensors.SafetensorsWriter;
import io.whittle.model.safetensors.TensorSource;
import io.whittle.tensor.FloatTensor;
import io.whittle.tensor.HostAllocator;
import io.whittle.tensor.Shape;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class PackedFormatTest {

    private static final String PREFIX = "model.layers.2.mlp.experts.5";

    @TempDir
    Path dir;

    private static Map<String, String> meta(boolean symmetric, int groupSize) {
        return PackedFormat.metadata(groupSize, symmetric, BitAllocation.defaults(), "gptq", List.of("gate_proj", "up_proj"),
                List.of("down_proj"));
    }

    private Path write(String name, QuantizedExpert e, boolean symmetric, int groupSize) {
        Path out = dir.resolve(name);
        try (CheckpointWriter w = CheckpointWriter.create(out)) {
            w.writeTensors(PackedFormat.write(PREFIX, e), meta(symmetric, groupSize));
            w.commit();
        }
        return out;
    }

    @Test
    void roundTripGivesTheDequantizedWeightsBitForBitInOriginalOrder() {
        for (boolean sym : new boolean[]{false, true}) {
            ExpertFixture fx = new ExpertFixture(sym ? 2 : 1, 40, 48, 300);
            QuantizedExpert e = fx.quantize(true, true, 16, sym);
            Path out = write("rt-" + sym, e, sym, 16);
            try (Checkpoint c = Checkpoint.open(out)) {
                assertThat(PackedFormat.expertPrefixes(c)).containsExactly(PREFIX);
                assertThat(c.file(PREFIX + ".camera_perm").metadata()).containsEntry("format", "pt")
                        .containsEntry("whittle.format", "whittle-packed-v1").containsEntry("whittle.symmetric", Boolean.toString(sym));
                QuantizedExpert back = PackedFormat.read(c, PREFIX);
                assertThat(back.permutation().order()).isEqualTo(e.permutation().order());
                assertThat(back.rowProjections()).isEqualTo(e.rowProjections());
                assertThat(back.columnProjections()).isEqualTo(e.columnProjections());
                Map<String, FloatTensor> expected = e.dequantize(HostAllocator.root());
                Map<String, FloatTensor> got = PackedFormat.dequantize(c, PREFIX, HostAllocator.root());
                try {
                    assertThat(got.keySet()).containsExactly(PREFIX + ".gate_proj.weight", PREFIX + ".up_proj.weight",
                            PREFIX + ".down_proj.weight");
                    assertThat(got.get(PREFIX + ".gate_proj.weight").shape()).isEqualTo(Shape.of(40, 48));
                    assertThat(got.get(PREFIX + ".down_proj.weight").shape()).isEqualTo(Shape.of(48, 40));
                    for (String proj : List.of("gate_proj", "up_proj", "down_proj")) {
                        assertThat(got.get(PREFIX + "." + proj + ".weight").toArray()).isEqualTo(expected.get(proj).toArray());
                    }
                    // original order: decoded gate row j is sorted row inverse[j], decoded down column j is sorted column inverse[j]
                    int[] inv = e.permutation().inverse();
                    float[] gate = got.get(PREFIX + ".gate_proj.weight").toArray();
                    float[] down = got.get(PREFIX + ".down_proj.weight").toArray();
                    float[] sortedRow = new float[48];
                    float[] sortedDown = new float[40];
                    for (int j = 0; j < 40; j++) {
                        e.rowProjections().get("gate_proj").dequantizeRow(inv[j], sortedRow);
                        assertThat(java.util.Arrays.copyOfRange(gate, j * 48, (j + 1) * 48)).isEqualTo(sortedRow);
                    }
                    for (int r = 0; r < 48; r++) {
                        e.columnProjections().get("down_proj").dequantizeRow(r, sortedDown);
                        for (int j = 0; j < 40; j++) {
                            assertThat(down[r * 40 + j]).isEqualTo(sortedDown[inv[j]]);
                        }
                    }
                } finally {
                    expected.values().forEach(FloatTensor::close);
                    got.values().forEach(FloatTensor::close);
                }
            }
        }
    }

    @Test
    void tensorNamesShapesAndMetadataFollowTheSpecification() {
        ExpertFixture fx = new ExpertFixture(3, 40, 48, 200);
        QuantizedExpert e = fx.quantize(false, true, 16, false);
        int[] off = e.permutation().sliceOffsets();
        assertThat(e.permutation().sliceBits()).containsExactly(3, 2, 1);
        assertThat(off).containsExactly(0, 5, 35, 40); // floor(40/8) = 5, floor(40*7/8) = 35
        List<TensorSource> t = PackedFormat.write(PREFIX, e);
        Map<String, TensorSource> byName = new java.util.HashMap<>();
        t.forEach(s -> byName.put(s.name(), s));
        TreeSet<String> expected = new TreeSet<>(List.of(PREFIX + ".camera_perm", PREFIX + ".camera_slice_bits",
                PREFIX + ".camera_slice_offsets"));
        for (String proj : List.of("gate_proj", "up_proj", "down_proj")) {
            expected.add(PREFIX + "." + proj + ".weight_shape");
            for (int b : new int[]{3, 2, 1}) {
                for (String part : List.of("packed", "scale", "zero")) {
                    expected.add(PREFIX + "." + proj + ".q" + b + "." + part);
                }
            }
        }
        assertThat(new TreeSet<>(byName.keySet())).isEqualTo(expected);
        // gate: slice of 30 two-bit rows x 48 columns = 2880 bits = 360 bytes, 3 groups of 16 per row
        assertThat(byName.get(PREFIX + ".gate_proj.q2.packed").shape()).isEqualTo(Shape.of(360));
        assertThat(byName.get(PREFIX + ".gate_proj.q2.scale").shape()).isEqualTo(Shape.of(30, 3));
        // down: 48 rows x 5 three-bit columns = 720 bits = 90 bytes; one short group of 5 per row
        assertThat(byName.get(PREFIX + ".down_proj.q3.packed").shape()).isEqualTo(Shape.of(90));
        assertThat(byName.get(PREFIX + ".down_proj.q3.zero").shape()).isEqualTo(Shape.of(48, 1));
        assertThat(byName.get(PREFIX + ".down_proj.q2.scale").shape()).isEqualTo(Shape.of(48, 2)); // 30 = 16 + 14
        PackedFormat.Header h = PackedFormat.header(meta(false, 16));
        assertThat(h.groupSize()).isEqualTo(16);
        assertThat(h.bits()).containsExactly(3, 2, 1);
        assertThat(h.rowProjections()).containsExactly("gate_proj", "up_proj");
        assertThat(h.columnProjections()).containsExactly("down_proj");
    }

    @Test
    void outputIsByteIdenticalAcrossRuns() throws Exception {
        Path a = write("a", new ExpertFixture(4, 40, 48, 300).quantize(true, true, 16, false), false, 16);
        Path b = write("b", new ExpertFixture(4, 40, 48, 300).quantize(true, true, 16, false), false, 16);
        assertThat(Files.readAllBytes(a.resolve("model.safetensors"))).isEqualTo(Files.readAllBytes(b.resolve("model.safetensors")));
    }

    @Test
    void shardsWithoutTheSchemeAreRejected() {
        QuantizedExpert e = new ExpertFixture(5, 40, 48, 100).quantize(false, true, 16, false);
        Path file = dir.resolve("plain.safetensors");
        SafetensorsWriter.write(file, PackedFormat.write(PREFIX, e), Map.of("format", "pt"));
        try (Checkpoint c = Checkpoint.open(file)) {
            assertThatThrownBy(() -> PackedFormat.read(c, PREFIX)).hasMessage("not a whittle-packed-v1 shard: whittle.format is null");
        }
        QuantizedExpert bf16 = new QuantizedExpert(MicroExpertPermutation.byBits(new int[]{4}),
                Map.of("gate_proj", new QuantizedMatrix(QuantLayout.rowBits(4, new int[]{4}, 4, true, ScaleFormat.BF16),
                        new byte[4], new float[]{1f}, null)), Map.of());
        assertThatThrownBy(() -> PackedFormat.write(PREFIX, bf16))
                .hasMessage(PREFIX + ".gate_proj: whittle-packed-v1 stores F16 scales, the matrix has BF16");
    }
}
