package io.whittle.model;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import io.whittle.model.safetensors.SafetensorsException;
import io.whittle.model.safetensors.SafetensorsFile;
import io.whittle.model.safetensors.SafetensorsWriter;
import io.whittle.model.safetensors.TensorEntry;
import io.whittle.model.safetensors.TensorSource;
import io.whittle.tensor.DType;
import io.whittle.tensor.FloatFormats;
import io.whittle.tensor.FloatTensor;
import io.whittle.tensor.HostAllocator;
import io.whittle.tensor.Shape;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.TreeMap;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;

/** Sharded checkpoints: what {@link CheckpointWriter} publishes, and what {@link Checkpoint} accepts and rejects. */
class CheckpointTest {

    private static final JsonMapper JSON = JsonMapper.builder().build();

    @TempDir
    Path dir;

    private HostAllocator alloc;
    private final SplittableRandom rnd = new SplittableRandom(31337);

    @BeforeEach
    void setUp() {
        alloc = HostAllocator.root().newChild("checkpoint-test", Long.MAX_VALUE);
    }

    @AfterEach
    void tearDown() {
        alloc.close(); // fails on a leaked tensor
    }

    // ---------------------------------------------------------------- writer

    @Test
    void shardedWriteProducesNumberedShardsAndAnExactIndex() throws IOException {
        Map<String, float[]> values = new LinkedHashMap<>();
        Path out = dir.resolve("out");
        try (CheckpointWriter w = CheckpointWriter.create(out, 100)) {
            // group 1: three 48-byte F32 tensors under a 100-byte cap -> two shards ([a, b], [c])
            w.writeTensors(List.of(f32("layers.0.a", Shape.of(12), values), f32("layers.0.b", Shape.of(3, 4), values),
                    f32("layers.0.c", Shape.of(12), values)));
            // group 2: one 400-byte tensor, over the cap -> a shard of its own
            w.writeTensors(List.of(f32("embed", Shape.of(10, 10), values)));
            // group 3: two 20-byte BF16 tensors and an I64 -> one shard
            w.writeTensors(List.of(bf16("layers.1.x", Shape.of(10), values), bf16("layers.1.y", Shape.of(2, 5), values),
                    TensorSource.ofLongs("ids", DType.I64, Shape.of(3), new long[] {1, -2, 3})));
            w.writeJson("config.json", JSON.readTree("{\"model_type\":\"llama\"}"));
            assertThat(Files.exists(out)).as("nothing is published before commit").isFalse();
            assertEquals(out.toAbsolutePath(), w.commit());
        }
        List<String> shardNames = List.of("model-00001-of-00004.safetensors", "model-00002-of-00004.safetensors",
                "model-00003-of-00004.safetensors", "model-00004-of-00004.safetensors");
        try (Stream<Path> files = Files.list(out)) {
            assertThat(files.map(p -> p.getFileName().toString())).containsExactlyInAnyOrder(
                    "model-00001-of-00004.safetensors", "model-00002-of-00004.safetensors", "model-00003-of-00004.safetensors",
                    "model-00004-of-00004.safetensors", Checkpoint.INDEX_FILE, "config.json");
        }
        JsonNode index = JSON.readTree(Files.readString(out.resolve(Checkpoint.INDEX_FILE)));
        Map<String, String> weightMap = new TreeMap<>();
        index.get("weight_map").properties().forEach(e -> weightMap.put(e.getKey(), e.getValue().stringValue()));
        assertThat(weightMap).containsExactlyEntriesOf(new TreeMap<>(Map.of(
                "layers.0.a", shardNames.get(0), "layers.0.b", shardNames.get(0), "layers.0.c", shardNames.get(1),
                "embed", shardNames.get(2), "layers.1.x", shardNames.get(3), "layers.1.y", shardNames.get(3),
                "ids", shardNames.get(3))));
        long expectedTotal = 48 * 3 + 400 + 20 * 2 + 24;
        assertEquals(expectedTotal, index.get("metadata").get("total_size").longValue());
        long sumOfTensorBytes = 0;
        for (String shard : shardNames) {
            try (SafetensorsFile f = SafetensorsFile.open(out.resolve(shard))) {
                assertThat(f.metadata()).containsExactly(Map.entry("format", "pt"));
                sumOfTensorBytes += f.entries().values().stream().mapToLong(TensorEntry::byteLength).sum();
            }
        }
        assertEquals(expectedTotal, sumOfTensorBytes);

        try (Checkpoint ckpt = Checkpoint.open(out)) {
            assertThat(ckpt.files()).hasSize(4);
            assertThat(ckpt.tensorNames()).containsExactlyInAnyOrderElementsOf(weightMap.keySet());
            assertEquals(expectedTotal, ckpt.totalBytes());
            for (Map.Entry<String, float[]> e : values.entrySet()) {
                try (FloatTensor t = ckpt.readFloat(e.getKey(), alloc)) {
                    assertArrayEquals(e.getValue(), t.toArray(), e.getKey());
                }
            }
            assertArrayEquals(new long[] {1, -2, 3}, ckpt.readLongs("ids"));
            assertEquals(Shape.of(3, 4), ckpt.entry("layers.0.b").shape());
            try (FloatTensor rows = alloc.allocate(Shape.of(3, 10))) {
                ckpt.readRows("embed", 7, 2, rows, 1); // rows 7..8 into rows 1..2
                float[] embed = values.get("embed");
                assertArrayEquals(java.util.Arrays.copyOfRange(embed, 70, 90), java.util.Arrays.copyOfRange(rows.toArray(), 10, 30));
            }
            assertThat(ckpt.auxiliaryFiles()).extracting(p -> p.getFileName().toString()).containsExactly("config.json");
            assertThatThrownBy(() -> ckpt.entry("absent")).isInstanceOf(SafetensorsException.class)
                    .hasMessageContaining("no tensor named 'absent'");
        }
    }

    @Test
    void aSingleShardIsPublishedAsModelSafetensorsWithoutIndex() throws IOException {
        Map<String, float[]> values = new LinkedHashMap<>();
        Path out = dir.resolve("single");
        try (CheckpointWriter w = CheckpointWriter.create(out)) {
            w.writeTensors(List.of(f32("w", Shape.of(4, 4), values), bf16("b", Shape.of(4), values)));
            w.commit();
        }
        try (Stream<Path> files = Files.list(out)) {
            assertThat(files.map(p -> p.getFileName().toString())).containsExactly(Checkpoint.SINGLE_FILE);
        }
        try (Checkpoint ckpt = Checkpoint.open(out)) {
            assertThat(ckpt.tensorNames()).containsExactlyInAnyOrder("w", "b");
            try (FloatTensor t = ckpt.readFloat("b", alloc)) {
                assertArrayEquals(values.get("b"), t.toArray());
            }
        }
    }

    @Test
    void rewritingACheckpointThroughCopyOfKeepsEveryByte() throws IOException {
        Map<String, float[]> values = new LinkedHashMap<>();
        Path first = dir.resolve("first");
        try (CheckpointWriter w = CheckpointWriter.create(first, 64)) {
            w.writeTensors(List.of(f32("a", Shape.of(8), values), f32("b", Shape.of(8), values), bf16("c", Shape.of(8), values)));
            w.commit();
        }
        Path second = dir.resolve("second");
        try (Checkpoint src = Checkpoint.open(first); CheckpointWriter w = CheckpointWriter.create(second, 64)) {
            w.writeTensors(src.tensorNames().stream().sorted().map(src::copyOf).toList());
            w.commit();
        }
        try (Stream<Path> files = Files.list(first)) {
            for (Path p : files.toList()) {
                assertArrayEquals(Files.readAllBytes(p), Files.readAllBytes(second.resolve(p.getFileName())), p.getFileName().toString());
            }
        }
    }

    @Test
    void closeWithoutCommitLeavesNothing() throws IOException {
        Map<String, float[]> values = new LinkedHashMap<>();
        Path out = dir.resolve("abandoned");
        Path staging;
        try (CheckpointWriter w = CheckpointWriter.create(out, 10)) {
            staging = w.stagingDirectory();
            w.writeTensors(List.of(f32("a", Shape.of(8), values), f32("b", Shape.of(8), values)));
            w.writeBytes("report.txt", "partial".getBytes(StandardCharsets.UTF_8));
            assertThat(staging).isDirectory();
            assertThat(staging.getParent()).isEqualTo(dir.toAbsolutePath());
        }
        assertThat(Files.exists(staging)).isFalse();
        assertThat(Files.exists(out)).isFalse();
        try (Stream<Path> files = Files.list(dir)) {
            assertThat(files).isEmpty();
        }
    }

    @Test
    void creatingOnANonEmptyTargetFailsAtOnce() throws IOException {
        Path existing = Files.createDirectory(dir.resolve("existing"));
        Files.writeString(existing.resolve("keep.txt"), "earlier output");
        assertThatThrownBy(() -> CheckpointWriter.create(existing)).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining(existing.toString()).hasMessageContaining("already exists and is not empty");
        Path file = Files.writeString(dir.resolve("a-file"), "x");
        assertThatThrownBy(() -> CheckpointWriter.create(file)).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("already exists");
        try (Stream<Path> files = Files.list(dir)) {
            assertThat(files.map(p -> p.getFileName().toString())).as("no staging directory was made")
                    .containsExactlyInAnyOrder("existing", "a-file");
        }
        assertThat(Files.readString(existing.resolve("keep.txt"))).isEqualTo("earlier output");

        Path empty = Files.createDirectory(dir.resolve("empty"));
        Map<String, float[]> values = new LinkedHashMap<>();
        try (CheckpointWriter w = CheckpointWriter.create(empty)) {
            w.writeTensors(List.of(f32("a", Shape.of(2), values)));
            w.commit();
        }
        assertThat(empty.resolve(Checkpoint.SINGLE_FILE)).isRegularFile();
    }

    @Test
    void writerRejectsRepeatedTensorsWritesAfterCommitAndBadShardSizes() {
        Map<String, float[]> values = new LinkedHashMap<>();
        assertThatThrownBy(() -> CheckpointWriter.create(dir.resolve("zero"), 0)).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("max shard size must be positive");
        try (CheckpointWriter w = CheckpointWriter.create(dir.resolve("twice"))) {
            w.writeTensors(List.of(f32("a", Shape.of(2), values)));
            assertThatThrownBy(() -> w.writeTensors(List.of(f32("a", Shape.of(2), values))))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("tensor 'a' written twice");
            w.commit();
            assertThatThrownBy(() -> w.writeTensors(List.of(f32("b", Shape.of(2), values))))
                    .isInstanceOf(IllegalStateException.class).hasMessageContaining("already committed");
        }
        assertThat(dir.resolve("twice").resolve(Checkpoint.SINGLE_FILE)).isRegularFile();
    }

    // ---------------------------------------------------------------- reader: index problems

    @Test
    void rejectsIndexNamingAMissingShard() throws IOException {
        Path model = shardedModel();
        Files.delete(model.resolve("model-00002-of-00002.safetensors"));
        assertIndexRejected(model, "shard 'model-00002-of-00002.safetensors'", "does not exist");
    }

    @Test
    void rejectsTensorMappedToAShardThatLacksIt() throws IOException {
        Path model = shardedModel();
        rewriteIndex(model, m -> m.put("ghost", "model-00001-of-00002.safetensors"));
        assertIndexRejected(model, "tensor 'ghost' is mapped to model-00001-of-00002.safetensors but that file does not contain it");
    }

    @Test
    void rejectsTensorStoredInTwoShards() throws IOException {
        Path model = shardedModel();
        // shard 2 gets a copy of "a", which the index maps to shard 1
        Path shard2 = model.resolve("model-00002-of-00002.safetensors");
        SafetensorsWriter.write(shard2, List.of(TensorSource.ofBytes("b", DType.F32, Shape.of(2), new byte[8]),
                TensorSource.ofBytes("a", DType.F32, Shape.of(2), new byte[8])), Map.of("format", "pt"));
        assertIndexRejected(model, "tensor 'a' appears in both model-00001-of-00002.safetensors and model-00002-of-00002.safetensors");
    }

    @Test
    void rejectsTensorListedTwiceInTheWeightMap() throws IOException {
        Path model = shardedModel();
        String text = Files.readString(model.resolve(Checkpoint.INDEX_FILE));
        Files.writeString(model.resolve(Checkpoint.INDEX_FILE),
                text.replace("\"weight_map\" : {", "\"weight_map\" : {\n    \"a\" : \"model-00002-of-00002.safetensors\",").replace(
                        "\"weight_map\":{", "\"weight_map\":{\"a\":\"model-00002-of-00002.safetensors\","));
        assertIndexRejected(model, "listed twice", "\"a\"");
    }

    @Test
    void rejectsTensorInAShardButNotInTheMap() throws IOException {
        Path model = shardedModel();
        rewriteIndex(model, m -> m.remove("a2"));
        assertIndexRejected(model, "tensor 'a2' in model-00001-of-00002.safetensors is missing from weight_map");
    }

    @Test
    void rejectsIndexWithoutWeightMapOrWithBadJsonOrOutsidePaths() throws IOException {
        Path model = shardedModel();
        Files.writeString(model.resolve(Checkpoint.INDEX_FILE), "{\"metadata\":{\"total_size\":16}}");
        assertIndexRejected(model, "no weight_map object");
        Files.writeString(model.resolve(Checkpoint.INDEX_FILE), "{\"weight_map\":{\"a\":");
        assertIndexRejected(model, "invalid JSON");
        Files.writeString(model.resolve(Checkpoint.INDEX_FILE), "{\"weight_map\":{\"a\":\"../elsewhere.safetensors\"}}");
        assertIndexRejected(model, "outside the model directory");
        Files.writeString(model.resolve(Checkpoint.INDEX_FILE), "{\"weight_map\":{\"a\":3}}");
        assertIndexRejected(model, "weight_map entry of 'a' is not a file name");
    }

    @Test
    void aBrokenShardIsReportedWithItsFileName() throws IOException {
        Path model = shardedModel();
        Path shard = model.resolve("model-00002-of-00002.safetensors");
        byte[] bytes = Files.readAllBytes(shard);
        Files.write(shard, java.util.Arrays.copyOf(bytes, bytes.length - 4));
        assertThatThrownBy(() -> Checkpoint.open(model)).isInstanceOf(SafetensorsException.class)
                .hasMessageContaining(shard.toString()).hasMessageContaining("tensor 'b'").hasMessageContaining("out of range");
    }

    @Test
    void opensAFileDirectlyAndExplainsAnEmptyDirectory() throws IOException {
        Path model = shardedModel();
        try (Checkpoint c = Checkpoint.open(model.resolve("model-00002-of-00002.safetensors"))) {
            assertThat(c.tensorNames()).containsExactly("b");
            assertThat(c.directory()).isEqualTo(model);
        }
        Path empty = Files.createDirectory(dir.resolve("nothing"));
        assertThatThrownBy(() -> Checkpoint.open(empty)).isInstanceOf(ModelConfigException.class)
                .hasMessageContaining(empty.toString()).hasMessageContaining("found neither model.safetensors nor model.safetensors.index.json");
        assertThatThrownBy(() -> Checkpoint.open(dir.resolve("absent"))).isInstanceOf(ModelConfigException.class)
                .hasMessageContaining("no such model directory or file");
    }

    // ---------------------------------------------------------------- helpers

    /** Two shards: {a, a2} and {b}, with a consistent index. */
    private Path shardedModel() throws IOException {
        Path model = dir.resolve("model");
        try (CheckpointWriter w = CheckpointWriter.create(model, 16)) {
            w.writeTensors(List.of(TensorSource.ofBytes("a", DType.F32, Shape.of(2), new byte[8]),
                    TensorSource.ofBytes("a2", DType.F32, Shape.of(2), new byte[8])));
            w.writeTensors(List.of(TensorSource.ofBytes("b", DType.F32, Shape.of(2), new byte[8])));
            w.commit();
        }
        try (Checkpoint c = Checkpoint.open(model)) {
            assertThat(c.tensorNames()).containsExactlyInAnyOrder("a", "a2", "b"); // valid before each test breaks it
        }
        return model;
    }

    private static void rewriteIndex(Path model, java.util.function.Consumer<Map<String, String>> edit) throws IOException {
        Path indexFile = model.resolve(Checkpoint.INDEX_FILE);
        JsonNode index = JSON.readTree(Files.readString(indexFile));
        Map<String, String> map = new LinkedHashMap<>();
        index.get("weight_map").properties().forEach(e -> map.put(e.getKey(), e.getValue().stringValue()));
        edit.accept(map);
        var root = JSON.createObjectNode();
        root.set("metadata", index.get("metadata"));
        var wm = root.putObject("weight_map");
        map.forEach(wm::put);
        Files.writeString(indexFile, JSON.writeValueAsString(root));
    }

    private static void assertIndexRejected(Path model, String... fragments) {
        var thrown = assertThatThrownBy(() -> Checkpoint.open(model).close()).isInstanceOf(ModelConfigException.class)
                .hasMessageStartingWith(model.resolve(Checkpoint.INDEX_FILE) + ": ");
        for (String f : fragments) {
            thrown.hasMessageContaining(f);
        }
    }

    private TensorSource f32(String name, Shape shape, Map<String, float[]> values) {
        float[] v = randomValues(shape);
        values.put(name, v);
        return TensorSource.ofBytes(name, DType.F32, shape, le(v));
    }

    /** BF16 from fp32 values; the expected read-back is the bf16 rounding of each value. */
    private TensorSource bf16(String name, Shape shape, Map<String, float[]> values) {
        float[] v = randomValues(shape);
        ByteBuffer b = ByteBuffer.allocate(2 * v.length).order(java.nio.ByteOrder.LITTLE_ENDIAN);
        float[] rounded = new float[v.length];
        for (int i = 0; i < v.length; i++) {
            b.putShort(FloatFormats.floatToBf16(v[i]));
            rounded[i] = FloatFormats.roundToBf16(v[i]);
        }
        values.put(name, rounded);
        return TensorSource.ofBytes(name, DType.BF16, shape, b.array());
    }

    private float[] randomValues(Shape shape) {
        float[] v = new float[Math.toIntExact(shape.numel())];
        for (int i = 0; i < v.length; i++) {
            v[i] = (float) rnd.nextGaussian();
        }
        return v;
    }

    private static byte[] le(float[] v) {
        ByteBuffer b = ByteBuffer.allocate(4 * v.length).order(java.nio.ByteOrder.LITTLE_ENDIAN);
        for (float x : v) {
            b.putFloat(x);
        }
        return b.array();
    }
}
