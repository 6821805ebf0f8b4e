package io.whittle.model;

import io.whittle.model.safetensors.SafetensorsWriter;
import io.whittle.model.safetensors.TensorSource;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.UUID;
import java.util.stream.Stream;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.SerializationFeature;
import tools.jackson.databind.json.JsonMapper;
import tools.jackson.databind.node.ObjectNode;

/**
 * Writes an output checkpoint so that it appears atomically or not at all: everything goes into a hidden staging
 * directory beside the target, which {@link #commit()} renames into place; {@link #close()} without a commit
 * deletes it. Tensors arrive in groups (a layer at a time) and each group becomes one or more shards under the
 * size cap; at commit the shards get their final {@code model-0000i-of-0000N.safetensors} names and an index
 * with the exact {@code total_size} (or a single {@code model.safetensors}).
 */
public final class CheckpointWriter implements AutoCloseable {

    /** Hugging Face's default {@code max_shard_size} (5 GB). */
    public static final long DEFAULT_MAX_SHARD_BYTES = 5_000_000_000L;

    private static final JsonMapper JSON = JsonMapper.builder().enable(SerializationFeature.INDENT_OUTPUT).build();
    private static final Map<String, String> SHARD_METADATA = Map.of("format", "pt");

    private final Path target;
    private final Path staging;
    private final long maxShardBytes;
    private final List<Shard> shards = new ArrayList<>();
    private final Set<String> written = new HashSet<>();
    private boolean committed;
    private boolean sealed;

    private record Shard(Path file, List<String> tensors, long bytes) {
    }

    private CheckpointWriter(Path target, Path staging, long maxShardBytes) {
        this.target = target;
        this.staging = staging;
        this.maxShardBytes = maxShardBytes;
    }

    public static CheckpointWriter create(Path target) {
        return create(target, DEFAULT_MAX_SHARD_BYTES);
    }

    /** Fails at once when {@code target} exists and is not an empty directory, before any work is done. */
    public static CheckpointWriter create(Path target, long maxShardBytes) {
        if (maxShardBytes <= 0) {
            throw new IllegalArgumentException("max shard size must be positive, got " + maxShardBytes);
        }
        Path abs = target.toAbsolutePath().normalize();
        requireWritableTarget(abs);
        Path parent = abs.getParent();
        try {
            Files.createDirectories(parent);
            Path staging = Files.createDirectory(parent.resolve("." + abs.getFileName() + ".whittle-tmp-" + UUID.randomUUID()));
            return new CheckpointWriter(abs, staging, maxShardBytes);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot create a staging directory beside " + abs + ": " + e.getMessage(), e);
        }
    }

    /** Throws when {@code target} already holds something, so a run never overwrites an earlier output. */
    public static void requireWritableTarget(Path target) {
        if (Files.exists(target)) {
            boolean empty;
            try (Stream<Path> s = Files.isDirectory(target) ? Files.list(target) : Stream.of(target)) {
                empty = Files.isDirectory(target) && s.findAny().isEmpty();
            } catch (IOException e) {
                throw new UncheckedIOException(target + ": cannot inspect: " + e.getMessage(), e);
            }
            if (!empty) {
                throw new IllegalArgumentException("output " + target + " already exists and is not empty; choose a new directory");
            }
        }
    }

    public Path target() {
        return target;
    }

    /** The staging directory: extra outputs (reports, energies) may be written here before commit. */
    public Path stagingDirectory() {
        return staging;
    }

    /** Writes a group of tensors as one shard, or several when the group exceeds the shard size cap. */
    public void writeTensors(List<? extends TensorSource> group) {
        writeTensors(group, SHARD_METADATA);
    }

    /**
     * Like {@link #writeTensors(List)}, with {@code metadata} in the {@code __metadata__} of every shard of this
     * group (e.g. a quantized format's scheme); {@code "format": "pt"} is added unless given.
     */
    public void writeTensors(List<? extends TensorSource> group, Map<String, String> metadata) {
        assertOpen();
        if (sealed) {
            throw new IllegalStateException("checkpoint " + target + " is sealed; no more tensors can be written");
        }
        Map<String, String> meta = new TreeMap<>(SHARD_METADATA);
        meta.putAll(metadata);
        List<TensorSource> current = new ArrayList<>();
        long bytes = 0;
        for (TensorSource t : group) {
            if (!written.add(t.name())) {
                throw new IllegalArgumentException("tensor '" + t.name() + "' written twice to " + target);
            }
            if (!current.isEmpty() && bytes + t.byteLength() > maxShardBytes) {
                flush(current, bytes, meta);
                current = new ArrayList<>();
                bytes = 0;
            }
            current.add(t);
            bytes += t.byteLength();
        }
        if (!current.isEmpty()) {
            flush(current, bytes, meta);
        }
    }

    private void flush(List<TensorSource> tensors, long bytes, Map<String, String> metadata) {
        Path file = staging.resolve(String.format("shard-%05d.safetensors", shards.size() + 1));
        long total = SafetensorsWriter.write(file, tensors, metadata);
        shards.add(new Shard(file, tensors.stream().map(TensorSource::name).toList(), total));
    }

    public void writeJson(String fileName, JsonNode node) {
        writeBytes(fileName, JSON.writeValueAsString(node).getBytes(StandardCharsets.UTF_8));
    }

    public void writeBytes(String fileName, byte[] bytes) {
        assertOpen();
        try {
            Files.write(staging.resolve(fileName), bytes);
        } catch (IOException e) {
            throw new UncheckedIOException("writing " + fileName + " into " + staging + ": " + e.getMessage(), e);
        }
    }

    /** Copies a file (e.g. tokenizer.json) unchanged into the output. */
    public void copyFile(Path source) {
        assertOpen();
        try {
            Files.copy(source, staging.resolve(source.getFileName().toString()), StandardCopyOption.REPLACE_EXISTING);
        } catch (IOException e) {
            throw new UncheckedIOException("copying " + source + " into " + staging + ": " + e.getMessage(), e);
        }
    }

    /**
     * Gives the shards their final names and writes the index, so the staging directory is a complete checkpoint
     * that can be read (e.g. evaluated) before it is published. No tensors can be added afterwards.
     */
    public void seal() {
        assertOpen();
        if (sealed) {
            return;
        }
        try {
            if (shards.size() == 1) {
                Files.move(shards.get(0).file(), staging.resolve(Checkpoint.SINGLE_FILE));
            } else if (shards.size() > 1) {
                Map<String, String> weightMap = new TreeMap<>();
                long total = 0;
                int n = shards.size();
                for (int i = 0; i < n; i++) {
                    Shard s = shards.get(i);
                    String name = String.format("model-%05d-of-%05d.safetensors", i + 1, n);
                    Files.move(s.file(), staging.resolve(name));
                    for (String t : s.tensors()) {
                        weightMap.put(t, name);
                    }
                    total += s.bytes();
                }
                ObjectNode index = JSON.createObjectNode();
                index.putObject("metadata").put("total_size", total);
                ObjectNode map = index.putObject("weight_map");
                weightMap.forEach(map::put);
                writeJson(Checkpoint.INDEX_FILE, index);
            }
            sealed = true;
        } catch (IOException e) {
            throw new UncheckedIOException("finishing shards in " + staging + ": " + e.getMessage(), e);
        }
    }

    /** Seals (if not yet) and moves the staging directory to the target in one rename. */
    public Path commit() {
        seal();
        try {
            if (Files.exists(target)) {
                Files.delete(target); // an empty directory, checked at create()
            }
            Files.move(staging, target, StandardCopyOption.ATOMIC_MOVE);
            committed = true;
            return target;
        } catch (FileAlreadyExistsException | java.nio.file.DirectoryNotEmptyException e) {
            throw new IllegalStateException("output " + target + " appeared while the job ran; the result stays unpublished", e);
        } catch (IOException e) {
            throw new UncheckedIOException("publishing " + target + ": " + e.getMessage(), e);
        }
    }

    private void assertOpen() {
        if (committed) {
            throw new IllegalStateException("checkpoint " + target + " is already committed");
        }
    }

    @Override
    public void close() {
        if (!committed) {
            deleteRecursively(staging);
        }
    }

    static void deleteRecursively(Path dir) {
        if (!Files.exists(dir)) {
            return;
        }
        try (Stream<Path> walk = Files.walk(dir)) {
            for (Path p : walk.sorted(Comparator.reverseOrder()).toList()) {
                Files.deleteIfExists(p);
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cleaning up " + dir + ": " + e.getMessage(), e);
        }
    }
}
