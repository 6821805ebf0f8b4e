package io.whittle.model;

import io.whittle.model.safetensors.SafetensorsException;
import io.whittle.model.safetensors.SafetensorsFile;
import io.whittle.model.safetensors.TensorEntry;
import io.whittle.model.safetensors.TensorSource;
import io.whittle.tensor.FloatTensor;
import io.whittle.tensor.HostAllocator;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.stream.Stream;
import tools.jackson.core.JacksonException;
import tools.jackson.core.StreamReadFeature;
import tools.jackson.core.exc.StreamReadException;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;

/**
 * The tensors of a Hugging Face checkpoint: one {@code model.safetensors}, a sharded checkpoint through
 * {@code model.safetensors.index.json}, or a single {@code .safetensors} file given directly. Opens every shard
 * read-only and validates the index against the shards (every mapped tensor present in its file, no tensor in
 * two shards).
 */
public final class Checkpoint implements AutoCloseable {

    public static final String INDEX_FILE = "model.safetensors.index.json";
    public static final String SINGLE_FILE = "model.safetensors";

    /** Strict: a tensor listed twice in weight_map (possibly under two shards) is an error, not "last wins". */
    private static final JsonMapper JSON = JsonMapper.builder()
            .enable(StreamReadFeature.STRICT_DUPLICATE_DETECTION)
            .build();

    private final Path directory;
    private final List<SafetensorsFile> files;
    private final Map<String, SafetensorsFile> byTensor;

    private Checkpoint(Path directory, List<SafetensorsFile> files, Map<String, SafetensorsFile> byTensor) {
        this.directory = directory;
        this.files = files;
        this.byTensor = byTensor;
    }

    public static Checkpoint open(Path path) {
        if (!Files.exists(path)) {
            throw new ModelConfigException(path + ": no such model directory or file");
        }
        if (Files.isRegularFile(path)) {
            SafetensorsFile f = SafetensorsFile.open(path);
            Map<String, SafetensorsFile> map = new LinkedHashMap<>();
            f.entries().keySet().forEach(n -> map.put(n, f));
            return new Checkpoint(path.toAbsolutePath().getParent(), List.of(f), map);
        }
        Path index = path.resolve(INDEX_FILE);
        if (Files.exists(index)) {
            return openSharded(path, index);
        }
        Path single = path.resolve(SINGLE_FILE);
        if (Files.exists(single)) {
            SafetensorsFile f = SafetensorsFile.open(single);
            Map<String, SafetensorsFile> map = new LinkedHashMap<>();
            f.entries().keySet().forEach(n -> map.put(n, f));
            return new Checkpoint(path, List.of(f), map);
        }
        throw new ModelConfigException(path + ": found neither " + SINGLE_FILE + " nor " + INDEX_FILE);
    }

    private static Checkpoint openSharded(Path dir, Path index) {
        JsonNode root;
        try {
            root = JSON.readTree(Files.readString(index));
        } catch (IOException e) {
            throw new ModelConfigException(index + ": cannot read: " + e.getMessage(), e);
        } catch (StreamReadException e) {
            String msg = e.getOriginalMessage();
            if (msg != null && msg.startsWith("Duplicate Object property")) {
                throw new ModelConfigException(index + ": a key is listed twice (" + msg + "); a tensor must map to exactly one shard", e);
            }
            throw new ModelConfigException(index + ": invalid JSON: " + msg, e);
        } catch (JacksonException e) {
            throw new ModelConfigException(index + ": invalid JSON: " + e.getOriginalMessage(), e);
        }
        JsonNode weightMap = root == null ? null : root.get("weight_map");
        if (weightMap == null || !weightMap.isObject()) {
            throw new ModelConfigException(index + ": no weight_map object");
        }
        Map<String, SafetensorsFile> openFiles = new LinkedHashMap<>();
        Map<String, SafetensorsFile> byTensor = new LinkedHashMap<>();
        try {
            for (Map.Entry<String, JsonNode> e : weightMap.properties()) {
                if (!e.getValue().isString()) {
                    throw new ModelConfigException(index + ": weight_map entry of '" + e.getKey() + "' is not a file name");
                }
                String fileName = e.getValue().stringValue();
                Path shard = dir.resolve(fileName).normalize();
                if (!shard.startsWith(dir.normalize()) || fileName.contains("/")) {
                    throw new ModelConfigException(index + ": weight_map names file '" + fileName + "' outside the model directory");
                }
                SafetensorsFile f = openFiles.get(fileName);
                if (f == null) {
                    if (!Files.exists(shard)) {
                        throw new ModelConfigException(index + ": shard '" + fileName + "' (holding '" + e.getKey() + "') does not exist");
                    }
                    f = SafetensorsFile.open(shard);
                    openFiles.put(fileName, f);
                }
                if (!f.contains(e.getKey())) {
                    throw new ModelConfigException(index + ": tensor '" + e.getKey() + "' is mapped to " + fileName + " but that file does not contain it");
                }
                byTensor.put(e.getKey(), f);
            }
            for (SafetensorsFile f : openFiles.values()) {
                for (String name : f.entries().keySet()) {
                    SafetensorsFile owner = byTensor.get(name);
                    if (owner == null) {
                        throw new ModelConfigException(index + ": tensor '" + name + "' in " + f.path().getFileName()
                                + " is missing from weight_map");
                    }
                    if (owner != f) {
                        throw new ModelConfigException(index + ": tensor '" + name + "' appears in both "
                                + owner.path().getFileName() + " and " + f.path().getFileName());
                    }
                }
            }
        } catch (RuntimeException e) {
            openFiles.values().forEach(SafetensorsFile::close);
            throw e;
        }
        return new Checkpoint(dir, new ArrayList<>(openFiles.values()), byTensor);
    }

    public Path directory() {
        return directory;
    }

    public List<SafetensorsFile> files() {
        return Collections.unmodifiableList(files);
    }

    /** Tensor names in index (or header) order. */
    public Set<String> tensorNames() {
        return Collections.unmodifiableSet(byTensor.keySet());
    }

    public boolean contains(String name) {
        return byTensor.containsKey(name);
    }

    public TensorEntry entry(String name) {
        return file(name).entry(name);
    }

    public SafetensorsFile file(String name) {
        SafetensorsFile f = byTensor.get(name);
        if (f == null) {
            throw new SafetensorsException(directory, "checkpoint has no tensor named '" + name + "'");
        }
        return f;
    }

    public FloatTensor readFloat(String name, HostAllocator allocator) {
        return file(name).readFloat(name, allocator);
    }

    /** Rows [first, first+count) of a 2-D tensor as fp32 into {@code dst} at row {@code dstRow}. */
    public void readRows(String name, long first, long count, FloatTensor dst, long dstRow) {
        TensorEntry e = entry(name);
        long cols = e.shape().cols();
        file(name).readFloats(e, first * cols, count * cols, dst, dstRow * cols);
    }

    public long[] readLongs(String name) {
        return file(name).readLongs(name);
    }

    /** The tensor's exact bytes, for copying unchanged into an output checkpoint. */
    public TensorSource copyOf(String name) {
        return TensorSource.copyOf(file(name), entry(name), name);
    }

    /** Sum of all tensor byte lengths (the index's {@code total_size}). */
    public long totalBytes() {
        return byTensor.keySet().stream().mapToLong(n -> entry(n).byteLength()).sum();
    }

    /** Files of the model directory other than weights (config, tokenizer, generation config...). */
    public List<Path> auxiliaryFiles() {
        if (directory == null || !Files.isDirectory(directory)) {
            return List.of();
        }
        try (Stream<Path> s = Files.list(directory)) {
            return s.filter(Files::isRegularFile)
                    .filter(p -> {
                        String n = p.getFileName().toString();
                        return !n.endsWith(".safetensors") && !n.equals(INDEX_FILE) && !n.endsWith(".partial")
                                && !n.endsWith(".bin") && !n.endsWith(".pt") && !n.endsWith(".pth");
                    })
                    .sorted().toList();
        } catch (IOException e) {
            throw new ModelConfigException(directory + ": cannot list: " + e.getMessage(), e);
        }
    }

    @Override
    public void close() {
        RuntimeException first = null;
        for (SafetensorsFile f : files) {
            try {
                f.close();
            } catch (RuntimeException e) {
                if (first == null) {
                    first = e;
                }
            }
        }
        if (first != null) {
            throw first;
        }
    }
}
