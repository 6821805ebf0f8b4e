package io.whittle.model.safetensors;

import static io.whittle.model.safetensors.RawSafetensors.f32;
import static io.whittle.model.safetensors.RawSafetensors.u8;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import io.whittle.tensor.DType;
import io.whittle.tensor.FloatFormats;
import io.whittle.tensor.FloatTensor;
import io.whittle.tensor.HostAllocator;
import io.whittle.tensor.Shape;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;

/** Writing safetensors files: byte-exact against the reference writer's test vectors, round trips, layout rules. */
class SafetensorsWriterTest {

    private static final JsonMapper JSON = JsonMapper.builder().build();

    @TempDir
    Path dir;

    // ---------------------------------------------------------------- byte-exact against the reference (tensor.rs tests)

    @Test
    void matchesReferenceSerializationBytes() throws IOException {
        // tensor.rs test_serialization: "attn.0" F32 [1,2,3] = 0..5; a 64-byte header needs no padding
        Path p = dir.resolve("ref.safetensors");
        SafetensorsWriter.write(p, List.of(TensorSource.ofBytes("attn.0", DType.F32, Shape.of(1, 2, 3), f32(0, 1, 2, 3, 4, 5))), null);
        byte[] expected = u8(64, 0, 0, 0, 0, 0, 0, 0, 123, 34, 97, 116, 116, 110, 46, 48, 34, 58, 123, 34, 100,
                116, 121, 112, 101, 34, 58, 34, 70, 51, 50, 34, 44, 34, 115, 104, 97, 112, 101, 34,
                58, 91, 49, 44, 50, 44, 51, 93, 44, 34, 100, 97, 116, 97, 95, 111, 102, 102, 115,
                101, 116, 115, 34, 58, 91, 48, 44, 50, 52, 93, 125, 125, 0, 0, 0, 0, 0, 0, 128, 63,
                0, 0, 0, 64, 0, 0, 64, 64, 0, 0, 128, 64, 0, 0, 160, 64);
        assertArrayEquals(expected, Files.readAllBytes(p));
    }

    @Test
    void matchesReferenceForcedAlignmentBytes() throws IOException {
        // tensor.rs test_serialization_forced_alignement: "attn0" F32 [1,1,2,3]; 65 JSON bytes + 7 spaces
        Path p = dir.resolve("aligned.safetensors");
        SafetensorsWriter.write(p, List.of(TensorSource.ofBytes("attn0", DType.F32, Shape.of(1, 1, 2, 3), f32(0, 1, 2, 3, 4, 5))), Map.of());
        byte[] expected = u8(72, 0, 0, 0, 0, 0, 0, 0, 123, 34, 97, 116, 116, 110, 48, 34, 58, 123, 34, 100, 116,
                121, 112, 101, 34, 58, 34, 70, 51, 50, 34, 44, 34, 115, 104, 97, 112, 101, 34, 58,
                91, 49, 44, 49, 44, 50, 44, 51, 93, 44, 34, 100, 97, 116, 97, 95, 111, 102, 102,
                115, 101, 116, 115, 34, 58, 91, 48, 44, 50, 52, 93, 125, 125, 32, 32, 32, 32, 32,
                32, 32, 0, 0, 0, 0, 0, 0, 128, 63, 0, 0, 0, 64, 0, 0, 64, 64, 0, 0, 128, 64, 0, 0,
                160, 64);
        assertArrayEquals(expected, Files.readAllBytes(p));
    }

    @Test
    void matchesReferenceEmptyFileBytes() throws IOException {
        // tensor.rs test_empty: no tensors, without and with metadata
        Path p = dir.resolve("empty.safetensors");
        SafetensorsWriter.write(p, List.of(), null);
        assertArrayEquals(u8(8, 0, 0, 0, 0, 0, 0, 0, 123, 125, 32, 32, 32, 32, 32, 32), Files.readAllBytes(p));
        Path q = dir.resolve("empty-meta.safetensors");
        SafetensorsWriter.write(q, List.of(), Map.of("framework", "pt"));
        assertArrayEquals(u8(40, 0, 0, 0, 0, 0, 0, 0, 123, 34, 95, 95, 109, 101, 116, 97, 100, 97, 116, 97, 95,
                95, 34, 58, 123, 34, 102, 114, 97, 109, 101, 119, 111, 114, 107, 34, 58, 34, 112,
                116, 34, 125, 125, 32, 32, 32, 32, 32), Files.readAllBytes(q));
        try (SafetensorsFile f = SafetensorsFile.open(q)) {
            assertThat(f.entries()).isEmpty();
            assertThat(f.metadata()).containsExactly(Map.entry("framework", "pt"));
        }
    }

    // ---------------------------------------------------------------- round trips

    @Test
    void roundTripsEveryWritableDtypeIncludingEmptyAndScalarTensors() throws IOException {
        SplittableRandom rnd = new SplittableRandom(4242);
        List<TensorSource> sources = new ArrayList<>();
        Map<String, float[]> floatValues = new LinkedHashMap<>();
        Map<String, long[]> longValues = new LinkedHashMap<>();
        List<FloatTensor> open = new ArrayList<>();
        List<Shape> shapes = List.of(Shape.of(3, 5), Shape.of(7), Shape.of(), Shape.of(0), Shape.of(2, 0, 3));
        try {
            for (DType dtype : DType.values()) {
                if (!dtype.isWritable()) {
                    continue;
                }
                for (int s = 0; s < shapes.size(); s++) {
                    Shape shape = shapes.get(s);
                    String name = dtype.safetensorsName().toLowerCase() + ".s" + s;
                    int n = Math.toIntExact(shape.numel());
                    if (dtype.isFloatingPoint()) {
                        float[] v = new float[n];
                        for (int i = 0; i < n; i++) {
                            v[i] = (float) (rnd.nextGaussian() * Math.scalb(1.0, rnd.nextInt(-20, 12)));
                        }
                        FloatTensor t = FloatTensor.of(shape, v);
                        open.add(t);
                        sources.add(TensorSource.ofFloat(name, dtype, t));
                        floatValues.put(name, v);
                    } else {
                        long[] v = new long[n];
                        for (int i = 0; i < n; i++) {
                            v[i] = randomInRange(rnd, dtype);
                        }
                        sources.add(TensorSource.ofLongs(name, dtype, shape, v));
                        longValues.put(name, v);
                    }
                }
            }
            Collections.shuffle(sources, new java.util.Random(1));
            Path p = dir.resolve("all.safetensors");
            long total = SafetensorsWriter.write(p, sources, Map.of("format", "pt"));
            assertEquals(sources.stream().mapToLong(TensorSource::byteLength).sum(), total);
            assertThat(Files.exists(dir.resolve("all.safetensors.partial"))).isFalse();
            try (SafetensorsFile f = SafetensorsFile.open(p)) {
                assertEquals(sources.size(), f.entries().size());
                for (TensorSource src : sources) {
                    TensorEntry e = f.entry(src.name());
                    assertEquals(src.dtype(), e.dtype(), src.name());
                    assertEquals(src.shape(), e.shape(), src.name());
                    assertEquals(0, e.fileOffset() % e.dtype().byteSize(), "aligned: " + src.name());
                }
                for (Map.Entry<String, float[]> fv : floatValues.entrySet()) {
                    DType dtype = f.entry(fv.getKey()).dtype();
                    try (FloatTensor t = f.readFloat(fv.getKey(), HostAllocator.root())) {
                        float[] got = t.toArray();
                        float[] want = fv.getValue();
                        for (int i = 0; i < want.length; i++) {
                            float expected = switch (dtype) {
                                case BF16 -> FloatFormats.roundToBf16(want[i]);
                                case F16 -> FloatFormats.halfToFloat(FloatFormats.floatToHalf(want[i]));
                                default -> want[i]; // F32 and F64 hold fp32 exactly
                            };
                            assertEquals(0, Float.compare(expected, got[i]), fv.getKey() + "[" + i + "]");
                        }
                    }
                }
                for (Map.Entry<String, long[]> lv : longValues.entrySet()) {
                    assertArrayEquals(lv.getValue(), f.readLongs(lv.getKey()), lv.getKey());
                }
            }
        } finally {
            open.forEach(FloatTensor::close);
        }
    }

    @Test
    void rawBytesRoundTripExactly() throws IOException {
        byte[] raw = new byte[4 * 1000 + 6];
        new SplittableRandom(3).nextBytes(raw);
        byte[] bf = java.util.Arrays.copyOf(raw, 2 * 3);
        byte[] f = java.util.Arrays.copyOfRange(raw, 6, raw.length);
        Path p = dir.resolve("raw.safetensors");
        SafetensorsWriter.write(p, List.of(TensorSource.ofBytes("f", DType.F32, Shape.of(10, 100), f),
                TensorSource.ofBytes("b", DType.BF16, Shape.of(3), bf)), null);
        try (SafetensorsFile file = SafetensorsFile.open(p)) {
            assertArrayEquals(f, read(file, "f"));
            assertArrayEquals(bf, read(file, "b"));
        }
    }

    // ---------------------------------------------------------------- layout

    @Test
    void headerIsSpacePaddedToAMultipleOf8() throws IOException {
        for (int len = 1; len <= 16; len++) { // every padding amount 0..7 occurs
            String name = "t".repeat(len);
            Path p = dir.resolve("pad" + len + ".safetensors");
            SafetensorsWriter.write(p, List.of(TensorSource.ofBytes(name, DType.U8, Shape.of(3), u8(1, 2, 3))), null);
            byte[] bytes = Files.readAllBytes(p);
            long n = ByteBuffer.wrap(bytes, 0, 8).order(ByteOrder.LITTLE_ENDIAN).getLong();
            assertEquals(0, n % 8, "header length of " + name);
            String header = new String(bytes, 8, (int) n, StandardCharsets.UTF_8);
            String json = "{\"" + name + "\":{\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":[0,3]}}";
            assertEquals(json + " ".repeat((int) n - json.length()), header);
            assertThat(n - json.length()).isBetween(0L, 7L);
            assertEquals(8 + n + 3, bytes.length);
        }
    }

    @Test
    void ordersTensorsByDescendingDtypeThenName() throws IOException {
        // Names chosen so that name order disagrees with dtype order; same-size dtypes group as the reference's
        // Dtype enum orders them (I64 > F64 > F32 > I32 > BF16 > F16 > I16 > I8 > U8 > BOOL).
        List<TensorSource> in = new ArrayList<>();
        String[][] spec = {{"a_bool", "BOOL"}, {"b_u8", "U8"}, {"c_i8", "I8"}, {"d_i16", "I16"}, {"e_f16", "F16"},
                {"f_bf16", "BF16"}, {"g_i32", "I32"}, {"h_f32", "F32"}, {"i_f64", "F64"}, {"j_i64", "I64"},
                {"z_f32", "F32"}, {"y_f32", "F32"}, {"\uD83D\uDE00", "U8"}, {"\uFFFD", "U8"}};
        for (String[] s : spec) {
            DType d = DType.fromSafetensorsName(s[1]).orElseThrow();
            in.add(TensorSource.ofBytes(s[0], d, Shape.of(3), new byte[3 * d.byteSize()]));
        }
        Collections.shuffle(in, new java.util.Random(5));
        Path p = dir.resolve("order.safetensors");
        SafetensorsWriter.write(p, in, null);
        byte[] bytes = Files.readAllBytes(p);
        long n = ByteBuffer.wrap(bytes, 0, 8).order(ByteOrder.LITTLE_ENDIAN).getLong();
        JsonNode header = JSON.readTree(new String(bytes, 8, (int) n, StandardCharsets.UTF_8));
        List<String> order = new ArrayList<>();
        header.propertyNames().forEach(order::add);
        // U+FFFD (EF BF BD) sorts before U+1F600 (F0 9F 98 80) by UTF-8 bytes, though not by UTF-16 units
        assertThat(order).containsExactly("j_i64", "i_f64", "h_f32", "y_f32", "z_f32", "g_i32", "f_bf16", "e_f16", "d_i16",
                "c_i8", "b_u8", "\uFFFD", "\uD83D\uDE00", "a_bool");
        long offset = 0;
        for (String name : order) {
            JsonNode offs = header.get(name).get("data_offsets");
            assertEquals(offset, offs.get(0).longValue(), name);
            offset = offs.get(1).longValue();
        }
    }

    @Test
    void metadataIsPreservedOnRewrite() throws IOException {
        Map<String, String> metadata = new LinkedHashMap<>();
        metadata.put("format", "pt");
        metadata.put("zeta", "last key first");
        metadata.put("alpha", "{\"json\": \"as a string\"}");
        SplittableRandom rnd = new SplittableRandom(11);
        float[] v = new float[24];
        for (int i = 0; i < v.length; i++) {
            v[i] = (float) rnd.nextGaussian();
        }
        Path first = dir.resolve("first.safetensors");
        Path second = dir.resolve("second.safetensors");
        try (FloatTensor t = FloatTensor.of(Shape.of(4, 6), v)) {
            SafetensorsWriter.write(first, List.of(TensorSource.ofFloat("w", DType.BF16, t),
                    TensorSource.ofLongs("ids", DType.I64, Shape.of(2), new long[] {5, -9})), metadata);
        }
        try (SafetensorsFile f = SafetensorsFile.open(first)) {
            assertThat(f.metadata()).containsExactlyEntriesOf(metadata);
            List<TensorSource> copies = f.entries().values().stream().map(e -> TensorSource.copyOf(f, e, e.name())).toList();
            SafetensorsWriter.write(second, copies, f.metadata());
        }
        assertArrayEquals(Files.readAllBytes(first), Files.readAllBytes(second));
    }

    @Test
    void overwritesAnExistingFileAtomically() throws IOException {
        Path p = dir.resolve("x.safetensors");
        SafetensorsWriter.write(p, List.of(TensorSource.ofBytes("a", DType.U8, Shape.of(1), u8(1))), null);
        SafetensorsWriter.write(p, List.of(TensorSource.ofBytes("b", DType.U8, Shape.of(2), u8(2, 3))), null);
        try (SafetensorsFile f = SafetensorsFile.open(p)) {
            assertThat(f.entries()).containsOnlyKeys("b");
        }
        try (Stream<Path> files = Files.list(dir)) {
            assertThat(files.map(q -> q.getFileName().toString())).containsExactly("x.safetensors");
        }
    }

    // ---------------------------------------------------------------- writer errors

    @Test
    void rejectsDuplicateAndReservedNamesAndReadOnlyDtypes() {
        Path p = dir.resolve("bad.safetensors");
        TensorSource a = TensorSource.ofBytes("a", DType.U8, Shape.of(1), u8(1));
        assertThatThrownBy(() -> SafetensorsWriter.write(p, List.of(a, a), null)).isInstanceOf(SafetensorsException.class)
                .hasMessageContaining("bad.safetensors").hasMessageContaining("duplicate tensor name 'a'");
        assertThatThrownBy(() -> SafetensorsWriter.write(p, List.of(TensorSource.ofBytes("__metadata__", DType.U8, Shape.of(1), u8(1))), null))
                .isInstanceOf(SafetensorsException.class).hasMessageContaining("'__metadata__' is reserved");
        assertThatThrownBy(() -> SafetensorsWriter.write(p, List.of(TensorSource.ofBytes("f8", DType.F8_E4M3, Shape.of(1), u8(1))), null))
                .isInstanceOf(SafetensorsException.class).hasMessageContaining("tensor 'f8'").hasMessageContaining("can only be read");
        try (FloatTensor t = FloatTensor.zeros(2)) {
            assertThatThrownBy(() -> TensorSource.ofFloat("q", DType.F8_E4M3, t)).isInstanceOf(IllegalArgumentException.class)
                    .hasMessageContaining("tensor 'q'");
            assertThatThrownBy(() -> TensorSource.ofFloat("q", DType.I32, t)).isInstanceOf(IllegalArgumentException.class);
        }
        assertThat(Files.exists(p)).isFalse();
    }

    @Test
    void rejectsIntegerValuesThatDoNotFit() {
        assertThatThrownBy(() -> TensorSource.ofLongs("m", DType.BOOL, Shape.of(2), new long[] {1, 2}))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("tensor 'm'").hasMessageContaining("value 2 at index 1");
        assertThatThrownBy(() -> TensorSource.ofLongs("i", DType.I8, Shape.of(1), new long[] {128}))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("does not fit in I8");
        assertThatThrownBy(() -> TensorSource.ofLongs("u", DType.U8, Shape.of(1), new long[] {-1}))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("does not fit in U8");
        assertThatThrownBy(() -> TensorSource.ofLongs("i", DType.I32, Shape.of(1), new long[] {1L << 31}))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("does not fit in I32");
        assertThatThrownBy(() -> TensorSource.ofBytes("b", DType.F32, Shape.of(2), new byte[7]))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("needs 8 bytes, got 7");
    }

    @Test
    void aSourceThatProducesTheWrongByteCountLeavesNoFile() throws IOException {
        TensorSource liar = new TensorSource() {
            @Override
            public String name() {
                return "liar";
            }

            @Override
            public DType dtype() {
                return DType.F32;
            }

            @Override
            public Shape shape() {
                return Shape.of(4);
            }

            @Override
            public void writeTo(ByteSink sink) throws IOException {
                sink.write(ByteBuffer.wrap(new byte[12]));
            }
        };
        Path p = dir.resolve("liar.safetensors");
        assertThatThrownBy(() -> SafetensorsWriter.write(p, List.of(liar), null)).isInstanceOf(SafetensorsException.class)
                .hasMessageContaining("liar.safetensors").hasMessageContaining("tensor 'liar' produced 12 bytes, expected 16");
        try (Stream<Path> files = Files.list(dir)) {
            assertThat(files).isEmpty();
        }
    }

    // ---------------------------------------------------------------- helpers

    private static long randomInRange(SplittableRandom rnd, DType dtype) {
        return switch (dtype) {
            case BOOL -> rnd.nextInt(2);
            case U8 -> rnd.nextInt(256);
            case I8 -> rnd.nextInt(-128, 128);
            case I16 -> rnd.nextInt(Short.MIN_VALUE, Short.MAX_VALUE + 1);
            case I32 -> rnd.nextInt();
            case I64 -> rnd.nextLong();
            default -> throw new IllegalArgumentException(dtype.toString());
        };
    }

    private static byte[] read(SafetensorsFile f, String name) {
        TensorEntry e = f.entry(name);
        ByteBuffer b = ByteBuffer.allocate((int) e.byteLength());
        f.readBytes(e, 0, b);
        return b.array();
    }
}
