package io.whittle.model.safetensors;

import static io.whittle.model.safetensors.RawSafetensors.bytes;
import static io.whittle.model.safetensors.RawSafetensors.f32;
import static io.whittle.model.safetensors.RawSafetensors.i32;
import static io.whittle.model.safetensors.RawSafetensors.le64;
import static io.whittle.model.safetensors.RawSafetensors.u8;
import static io.whittle.model.safetensors.RawSafetensors.write;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import io.whittle.tensor.DType;
import io.whittle.tensor.FloatTensor;
import io.whittle.tensor.HostAllocator;
import io.whittle.tensor.Shape;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Reading safetensors files: the reference bytes, every dtype, every way a file can be broken, and > 2 GiB tensors. */
class SafetensorsFileTest {

    @TempDir
    Path dir;

    // ---------------------------------------------------------------- well-formed files

    @Test
    void referenceDoctestBytesParse() {
        // safetensors tensor.rs doctest: b"<\x00\x00\x00\x00\x00\x00\x00{\"test\":{...}}" followed by 16 data bytes
        String header = "{\"test\":{\"dtype\":\"I32\",\"shape\":[2,2],\"data_offsets\":[0,16]}}";
        assertEquals('<', header.length(), "the reference length byte '<' is 60");
        byte[] data = i32(7, -3, 1 << 30, -1);
        Path p = write(dir, "doctest.safetensors", bytes(header, data));
        assertThat(p.toFile().length()).isEqualTo(8 + 60 + 16);
        try (SafetensorsFile f = SafetensorsFile.open(p)) {
            assertThat(f.entries()).containsOnlyKeys("test");
            TensorEntry e = f.entry("test");
            assertEquals(DType.I32, e.dtype());
            assertEquals(Shape.of(2, 2), e.shape());
            assertEquals(0, e.begin());
            assertEquals(16, e.end());
            assertEquals(68, e.fileOffset());
            assertThat(f.metadata()).isEmpty();
            assertArrayEquals(new long[] {7, -3, 1 << 30, -1}, f.readLongs("test"));
            try (FloatTensor t = f.readFloat("test", HostAllocator.root())) {
                assertArrayEquals(new float[] {7f, -3f, (float) (1 << 30), -1f}, t.toArray());
                assertEquals(Shape.of(2, 2), t.shape());
            }
        }
    }

    @Test
    void readsEveryDtypeFromUnalignedOffsets() {
        // A one-byte tensor first puts every later tensor at an odd offset: readers must not assume alignment.
        ByteArrayOutputStream data = new ByteArrayOutputStream();
        StringBuilder h = new StringBuilder("{");
        long[] at = {0};
        java.util.function.BiConsumer<String, Object[]> add = (name, spec) -> {
            byte[] b = (byte[]) spec[2];
            if (h.length() > 1) {
                h.append(',');
            }
            h.append('"').append(name).append("\":{\"dtype\":\"").append(spec[0]).append("\",\"shape\":").append(spec[1])
                    .append(",\"data_offsets\":[").append(at[0]).append(',').append(at[0] + b.length).append("]}");
            data.writeBytes(b);
            at[0] += b.length;
        };
        add.accept("bool", new Object[] {"BOOL", "[3]", u8(1, 0, 1)});
        add.accept("u8", new Object[] {"U8", "[2]", u8(0xFF, 7)});
        add.accept("i8", new Object[] {"I8", "[2]", u8(0x80, 0x7F)});
        add.accept("f8", new Object[] {"F8_E4M3", "[4]", u8(0x7E, 0xB8, 0x01, 0x38)});
        add.accept("i16", new Object[] {"I16", "[2]", le(ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN).putShort((short) -32768).putShort((short) 1234))});
        add.accept("f16", new Object[] {"F16", "[3]", le(ByteBuffer.allocate(6).order(ByteOrder.LITTLE_ENDIAN).putShort((short) 0x3C00).putShort((short) 0x7BFF).putShort((short) 0x0001))});
        add.accept("bf16", new Object[] {"BF16", "[2]", le(ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN).putShort((short) 0xC049).putShort((short) 0x3F80))});
        add.accept("i32", new Object[] {"I32", "[1]", i32(Integer.MIN_VALUE)});
        add.accept("f32", new Object[] {"F32", "[1,2]", f32(-0.0f, 3.5e-40f)});
        add.accept("f64", new Object[] {"F64", "[2]", le(ByteBuffer.allocate(16).order(ByteOrder.LITTLE_ENDIAN).putDouble(1.0 / 3).putDouble(1e300))});
        add.accept("i64", new Object[] {"I64", "[2]", le(ByteBuffer.allocate(16).order(ByteOrder.LITTLE_ENDIAN).putLong(Long.MIN_VALUE).putLong((1L << 53) + 1))});
        add.accept("scalar", new Object[] {"F32", "[]", f32(42.5f)});
        add.accept("empty", new Object[] {"BF16", "[4,0]", new byte[0]});
        h.append('}');
        Path p = write(dir, "all.safetensors", bytes(h.toString(), data.toByteArray()));
        try (SafetensorsFile f = SafetensorsFile.open(p)) {
            assertThat(f.entries().keySet()).containsExactly("bool", "u8", "i8", "f8", "i16", "f16", "bf16", "i32", "f32", "f64",
                    "i64", "scalar", "empty");
            assertThat(f.entry("i16").begin() % 2).as("i16 misaligned").isEqualTo(1);
            assertThat(f.entry("f32").begin() % 4).as("f32 misaligned").isNotZero();
            assertThat(f.entry("f64").begin() % 8).as("f64 misaligned").isNotZero();
            assertArrayEquals(new long[] {1, 0, 1}, f.readLongs("bool"));
            assertArrayEquals(new long[] {255, 7}, f.readLongs("u8"));
            assertArrayEquals(new long[] {-128, 127}, f.readLongs("i8"));
            assertArrayEquals(new long[] {-32768, 1234}, f.readLongs("i16"));
            assertArrayEquals(new long[] {Integer.MIN_VALUE}, f.readLongs("i32"));
            assertArrayEquals(new long[] {Long.MIN_VALUE, (1L << 53) + 1}, f.readLongs("i64"));
            assertFloats(f, "f8", 448f, -1f, 0x1p-9f, 1f);
            assertFloats(f, "f16", 1f, 65504f, 0x1p-24f);
            assertFloats(f, "bf16", -3.140625f, 1f);
            assertFloats(f, "f32", -0.0f, 3.5e-40f);
            assertFloats(f, "f64", (float) (1.0 / 3), Float.POSITIVE_INFINITY); // narrowing rounds to nearest, overflow to Inf
            assertFloats(f, "i64", (float) Long.MIN_VALUE, 0x1p53f); // 2^53 + 1 rounds to 2^53 in fp32
            assertFloats(f, "u8", 255f, 7f);
            assertFloats(f, "scalar", 42.5f);
            assertEquals(Shape.of(), f.entry("scalar").shape());
            assertEquals(1, f.entry("scalar").numel());
            assertEquals(0, f.entry("empty").numel());
            assertEquals(0, f.entry("empty").byteLength());
            try (FloatTensor t = f.readFloat("empty", HostAllocator.root())) {
                assertEquals(Shape.of(4, 0), t.shape());
            }
            assertThatThrownBy(() -> f.readLongs("f32")).isInstanceOf(SafetensorsException.class)
                    .hasMessageContaining("all.safetensors").hasMessageContaining("'f32'").hasMessageContaining("float dtype F32");
        }
    }

    @Test
    void metadataNullOrAbsentIsEmptyAndStringMapIsKeptInOrder() {
        Path nul = write(dir, "null-meta.safetensors", bytes("{\"__metadata__\":null}   ", new byte[0]));
        try (SafetensorsFile f = SafetensorsFile.open(nul)) {
            assertThat(f.metadata()).isEmpty();
            assertThat(f.entries()).isEmpty();
        }
        Path meta = write(dir, "meta.safetensors", bytes("{\"__metadata__\":{\"format\":\"pt\",\"z\":\"1\",\"a\":\"\\u00e9\"}}", new byte[0]));
        try (SafetensorsFile f = SafetensorsFile.open(meta)) {
            assertThat(f.metadata()).containsExactly(Map.entry("format", "pt"), Map.entry("z", "1"), Map.entry("a", "\u00e9"));
        }
    }

    @Test
    void partialReadsAndRangeChecks() {
        Path p = write(dir, "w.safetensors", bytes("{\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]}}",
                f32(0, 1, 2, 3, 4, 5)));
        try (SafetensorsFile f = SafetensorsFile.open(p); FloatTensor dst = FloatTensor.zeros(4)) {
            TensorEntry e = f.entry("w");
            f.readFloats(e, 2, 3, dst, 1);
            assertArrayEquals(new float[] {0, 2, 3, 4}, dst.toArray());
            assertThatThrownBy(() -> f.readFloats(e, 4, 3, dst, 0)).isInstanceOf(SafetensorsException.class)
                    .hasMessageContaining("w.safetensors").hasMessageContaining("tensor 'w'").hasMessageContaining("outside its 24 bytes");
            assertThatThrownBy(() -> f.entry("nope")).isInstanceOf(SafetensorsException.class)
                    .hasMessageContaining("w.safetensors").hasMessageContaining("no tensor named 'nope'");
        }
    }

    // ---------------------------------------------------------------- broken files, one test per fault

    private static final String W16 = "\"w\":{\"dtype\":\"I32\",\"shape\":[2,2],\"data_offsets\":[0,16]}";

    @Test
    void rejectsFileShorterThanTheLengthPrefix() {
        assertRejected("short.safetensors", u8(1, 2, 3, 4, 5), "truncated file", "5 bytes");
    }

    @Test
    void rejectsEmptyFile() {
        assertRejected("empty.safetensors", new byte[0], "truncated file", "0 bytes");
    }

    @Test
    void rejectsHeaderLengthOverTheLimit() {
        byte[] b = concat(le64(100_000_001L), "{}".getBytes(StandardCharsets.UTF_8));
        assertRejected("huge-header.safetensors", b, "header length 100000001 exceeds the limit of 100000000 bytes");
    }

    @Test
    void rejectsHeaderLengthThatIsNegativeAsSigned() {
        byte[] b = concat(le64(-1L), "{}".getBytes(StandardCharsets.UTF_8));
        assertRejected("ff-header.safetensors", b, "header length 18446744073709551615 exceeds the limit");
    }

    @Test
    void rejectsHeaderLengthPastTheEndOfTheFile() {
        byte[] b = concat(le64(200), ("{" + W16 + "}").getBytes(StandardCharsets.UTF_8));
        assertRejected("past-end.safetensors", b, "truncated file", "header length 200 runs past the end of the 65-byte file");
    }

    @Test
    void rejectsTruncatedData() {
        assertRejected("truncated.safetensors", bytes("{" + W16 + "}", new byte[12]),
                "tensor 'w'", "data_offsets [0, 16] are out of range", "only 12 bytes", "truncated");
    }

    @Test
    void rejectsOffsetsOutOfRange() {
        String h = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                + "\"b\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[8,24]}}";
        assertRejected("out-of-range.safetensors", bytes(h, new byte[16]), "tensor 'b'", "data_offsets [8, 24] are out of range",
                "only 16 bytes");
    }

    @Test
    void rejectsOverlappingOffsets() {
        String h = "{\"a\":{\"dtype\":\"I32\",\"shape\":[4],\"data_offsets\":[0,16]},"
                + "\"b\":{\"dtype\":\"I32\",\"shape\":[4],\"data_offsets\":[8,24]}}";
        assertRejected("overlap.safetensors", bytes(h, new byte[24]), "tensor 'b'", "data_offsets [8, 24] overlap tensor 'a' [0, 16]");
    }

    @Test
    void rejectsHoleBetweenTensors() {
        String h = "{\"a\":{\"dtype\":\"I32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                + "\"b\":{\"dtype\":\"I32\",\"shape\":[2],\"data_offsets\":[16,24]}}";
        assertRejected("hole.safetensors", bytes(h, new byte[24]), "tensor 'b'", "hole of 8 bytes");
    }

    @Test
    void rejectsTrailingBytesNotCoveredByAnyTensor() {
        assertRejected("trailing.safetensors", bytes("{" + W16 + "}", new byte[20]), "4 trailing bytes not covered by any tensor");
    }

    @Test
    void rejectsUnknownDtype() {
        String h = "{\"w\":{\"dtype\":\"F4\",\"shape\":[2],\"data_offsets\":[0,1]}}";
        assertRejected("dtype.safetensors", bytes(h, new byte[1]), "tensor 'w'", "unknown or unsupported dtype 'F4'", "BF16");
    }

    @Test
    void rejectsShapeThatDoesNotMatchTheByteLength() {
        String h = "{\"w\":{\"dtype\":\"I32\",\"shape\":[2,2],\"data_offsets\":[0,12]}}";
        assertRejected("mismatch.safetensors", bytes(h, new byte[12]), "tensor 'w'",
                "shape [2, 2] x I32 needs 16 bytes but data_offsets [0, 12] span 12");
    }

    @Test
    void rejectsShapeWhoseSizeOverflows() {
        String h = "{\"w\":{\"dtype\":\"F64\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,8]}}";
        assertRejected("overflow.safetensors", bytes(h, new byte[8]), "tensor 'w'", "too large");
    }

    @Test
    void rejectsNegativeOrFractionalDimensions() {
        assertRejected("neg.safetensors", bytes("{\"w\":{\"dtype\":\"U8\",\"shape\":[-1],\"data_offsets\":[0,0]}}", new byte[0]),
                "tensor 'w'", "invalid shape [-1]");
        assertRejected("frac.safetensors", bytes("{\"w\":{\"dtype\":\"U8\",\"shape\":[1.5],\"data_offsets\":[0,0]}}", new byte[0]),
                "tensor 'w'", "invalid shape");
    }

    @Test
    void rejectsReversedOffsets() {
        assertRejected("reversed.safetensors", bytes("{\"w\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[8,4]}}", new byte[8]),
                "tensor 'w'", "invalid data_offsets [8, 4]");
    }

    @Test
    void rejectsMissingFields() {
        assertRejected("nodtype.safetensors", bytes("{\"w\":{\"shape\":[1],\"data_offsets\":[0,1]}}", new byte[1]),
                "tensor 'w'", "missing dtype");
        assertRejected("noshape.safetensors", bytes("{\"w\":{\"dtype\":\"U8\",\"data_offsets\":[0,1]}}", new byte[1]),
                "tensor 'w'", "missing shape");
        assertRejected("nooffs.safetensors", bytes("{\"w\":{\"dtype\":\"U8\",\"shape\":[1]}}", new byte[1]),
                "tensor 'w'", "data_offsets must be [begin, end]");
        assertRejected("notobj.safetensors", bytes("{\"w\":[1,2]}", new byte[0]), "tensor 'w'", "not an object");
    }

    @Test
    void rejectsInvalidJson() {
        assertRejected("badjson.safetensors", bytes("{\"w\":{\"dtype\":\"I32\",", new byte[0]), "invalid header JSON");
    }

    @Test
    void rejectsTrailingJsonAfterTheHeaderObject() {
        assertRejected("trailjson.safetensors", bytes("{}{}", new byte[0]), "invalid header JSON", "trailing content");
    }

    @Test
    void rejectsHeaderThatDoesNotStartWithABrace() {
        assertRejected("nobrace.safetensors", bytes("  {}", new byte[0]), "invalid header", "must start with '{'");
    }

    @Test
    void rejectsInvalidUtf8InTheHeader() {
        byte[] header = concat("{\"w".getBytes(StandardCharsets.UTF_8), u8(0xFF), "\":1}".getBytes(StandardCharsets.UTF_8));
        assertRejected("utf8.safetensors", bytes(header, new byte[0]), "invalid header", "not valid UTF-8");
    }

    @Test
    void rejectsDuplicateTensorNames() {
        String h = "{" + W16 + "," + W16 + "}";
        assertRejected("dup.safetensors", bytes(h, new byte[16]), "duplicate tensor name 'w'");
    }

    @Test
    void rejectsDuplicateKeysInsideATensorEntry() {
        String h = "{\"w\":{\"dtype\":\"I32\",\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}";
        assertRejected("dupkey.safetensors", bytes(h, new byte[4]), "invalid header JSON", "dtype");
    }

    @Test
    void rejectsMetadataThatIsNotAStringMap() {
        assertRejected("meta-int.safetensors", bytes("{\"__metadata__\":{\"epoch\":3}}", new byte[0]),
                "__metadata__ value of 'epoch' is not a string");
        assertRejected("meta-list.safetensors", bytes("{\"__metadata__\":[\"a\"]}", new byte[0]),
                "__metadata__ must be a map of strings to strings");
    }

    @Test
    void rejectsMissingFile() {
        Path p = dir.resolve("absent.safetensors");
        assertThatThrownBy(() -> SafetensorsFile.open(p)).isInstanceOf(SafetensorsException.class)
                .hasMessageContaining(p.toString()).hasMessageContaining("does not exist");
    }

    private void assertRejected(String fileName, byte[] content, String... fragments) {
        Path p = write(dir, fileName, content);
        var thrown = assertThatThrownBy(() -> SafetensorsFile.open(p).close()).isInstanceOf(SafetensorsException.class)
                .hasMessageStartingWith(p + ": ");
        for (String fragment : fragments) {
            thrown.hasMessageContaining(fragment);
        }
    }

    // ---------------------------------------------------------------- > 2 GiB

    @Test
    void readsATensorLargerThan2GiBByPositionalReads() throws IOException {
        long numel = 600_000_000L; // 2.4 GB of F32: past every int-indexed buffer API
        long bytes = numel * 4;
        // sparse: only the header and the few pages written below take disk space; the rest reads back as zeros
        org.junit.jupiter.api.Assumptions.assumeTrue(Files.getFileStore(dir).getUsableSpace() > 4 * bytes / 3,
                "not enough space should the temp file system not support sparse files");
        String json = "{\"big\":{\"dtype\":\"F32\",\"shape\":[" + numel + "],\"data_offsets\":[0," + bytes + "]}}";
        byte[] header = (json + " ".repeat((8 - json.length() % 8) % 8)).getBytes(StandardCharsets.UTF_8);
        long dataStart = 8 + header.length;
        Path p = dir.resolve("big.safetensors");
        SplittableRandom rnd = new SplittableRandom(7);
        float[] tail = new float[64];
        float[] across = new float[64]; // straddles byte 2^31 of the data section
        for (int i = 0; i < 64; i++) {
            tail[i] = (float) rnd.nextGaussian();
            across[i] = (float) rnd.nextGaussian();
        }
        long acrossFirst = (1L << 31) / 4 - 32;
        try {
            try (FileChannel ch = FileChannel.open(p, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE, StandardOpenOption.SPARSE)) {
                ch.write(ByteBuffer.wrap(concat(le64(header.length), header)), 0);
                ch.write(ByteBuffer.wrap(f32(across)), dataStart + 4 * acrossFirst);
                ch.write(ByteBuffer.wrap(f32(tail)), dataStart + bytes - 4L * tail.length);
            }
            assertEquals(dataStart + bytes, Files.size(p));
            try (SafetensorsFile f = SafetensorsFile.open(p); FloatTensor dst = FloatTensor.zeros(64)) {
                TensorEntry e = f.entry("big");
                assertEquals(bytes, e.byteLength());
                f.readFloats(e, numel - 64, 64, dst, 0);
                assertArrayEquals(tail, dst.toArray());
                f.readFloats(e, acrossFirst, 64, dst, 0);
                assertArrayEquals(across, dst.toArray());
                f.readFloats(e, numel / 2, 64, dst, 0); // a hole of the sparse file
                assertArrayEquals(new float[64], dst.toArray());
                ByteBuffer last = ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN);
                f.readBytes(e, bytes - 4, last);
                assertEquals(tail[63], last.flip().getFloat());
                assertThatThrownBy(() -> f.readFloats(e, numel - 1, 2, dst, 0)).isInstanceOf(SafetensorsException.class)
                        .hasMessageContaining("outside its " + bytes + " bytes");
            }
        } finally {
            Files.deleteIfExists(p);
        }
    }

    // ---------------------------------------------------------------- helpers

    private static void assertFloats(SafetensorsFile f, String name, float... expected) {
        try (FloatTensor t = f.readFloat(name, HostAllocator.root())) {
            float[] got = t.toArray();
            assertEquals(expected.length, got.length, name);
            for (int i = 0; i < got.length; i++) {
                assertEquals(0, Float.compare(expected[i], got[i]), name + "[" + i + "]: expected " + expected[i] + " got " + got[i]);
            }
        }
    }

    private static byte[] le(ByteBuffer b) {
        return b.array();
    }

    private static byte[] concat(byte[]... parts) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        for (byte[] part : parts) {
            out.writeBytes(part);
        }
        return out.toByteArray();
    }
}
