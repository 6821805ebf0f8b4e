package io.whittle.model.safetensors;

import io.whittle.tensor.DType;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import tools.jackson.databind.node.ArrayNode;
import tools.jackson.databind.node.ObjectNode;

/**
 * Writes one safetensors file byte for byte as the reference writer ({@code safetensors} {@code tensor.rs}
 * {@code prepare}) does: tensors ordered by descending dtype (the reference {@code Dtype} order, which is
 * ascending element size, so larger elements come first), then by name (UTF-8 bytes), so every tensor is aligned
 * to its element size without holes; the JSON header padded with spaces
 * to a multiple of 8 bytes; {@code __metadata__} as a string map. Writes to {@code <target>.partial} and
 * renames, so a crash never leaves a file that looks complete.
 */
public final class SafetensorsWriter {

    /**
     * The reference order: dtype descending in the reference {@code Dtype} enum (whose order {@link DType}
     * follows), then name ascending by UTF-8 bytes (Rust compares strings bytewise; Java's compareTo compares
     * UTF-16 units, which differs for characters beyond the BMP).
     */
    static final Comparator<TensorSource> WRITE_ORDER = Comparator
            .comparingInt((TensorSource t) -> -t.dtype().ordinal())
            .thenComparing((a, b) -> Arrays.compareUnsigned(a.name().getBytes(StandardCharsets.UTF_8),
                    b.name().getBytes(StandardCharsets.UTF_8)));

    private SafetensorsWriter() {
    }

    /** Writes the file and returns the total tensor bytes (the contribution to an index's total_size). */
    public static long write(Path target, List<? extends TensorSource> tensors, Map<String, String> metadata) {
        List<TensorSource> ordered = new ArrayList<>(tensors);
        Set<String> names = new HashSet<>();
        for (TensorSource t : ordered) {
            if (!names.add(t.name())) {
                throw new SafetensorsException(target, "duplicate tensor name '" + t.name() + "'");
            }
            if (t.name().equals("__metadata__")) {
                throw new SafetensorsException(target, "'__metadata__' is reserved and cannot name a tensor");
            }
            if (!t.dtype().isWritable()) {
                throw new SafetensorsException(target, "tensor '" + t.name() + "': dtype " + t.dtype() + " can only be read");
            }
            long needed;
            try {
                needed = Math.multiplyExact(t.shape().numel(), (long) t.dtype().byteSize());
            } catch (ArithmeticException e) {
                throw new SafetensorsException(target, "tensor '" + t.name() + "': shape " + t.shape() + " is too large");
            }
            if (t.byteLength() != needed) {
                throw new SafetensorsException(target, "tensor '" + t.name() + "': shape " + t.shape() + " x " + t.dtype()
                        + " needs " + needed + " bytes but the source declares " + t.byteLength());
            }
        }
        ordered.sort(WRITE_ORDER);

        ObjectNode header = SafetensorsFile.JSON.createObjectNode();
        if (metadata != null && !metadata.isEmpty()) {
            ObjectNode meta = header.putObject("__metadata__");
            new LinkedHashMap<>(metadata).forEach(meta::put);
        }
        long offset = 0;
        for (TensorSource t : ordered) {
            ObjectNode node = header.putObject(t.name());
            node.put("dtype", t.dtype().safetensorsName());
            ArrayNode shape = node.putArray("shape");
            for (long d : t.shape().dims()) {
                shape.add(d);
            }
            ArrayNode offs = node.putArray("data_offsets");
            offs.add(offset);
            offset += t.byteLength();
            offs.add(offset);
        }
        byte[] json = SafetensorsFile.JSON.writeValueAsString(header).getBytes(StandardCharsets.UTF_8);
        int padded = (json.length + 7) / 8 * 8;
        ByteBuffer head = ByteBuffer.allocate(8 + padded).order(ByteOrder.LITTLE_ENDIAN);
        head.putLong(padded).put(json);
        while (head.hasRemaining()) {
            head.put((byte) ' ');
        }
        head.flip();

        Path partial = target.resolveSibling(target.getFileName() + ".partial");
        try (FileChannel out = FileChannel.open(partial, StandardOpenOption.CREATE, StandardOpenOption.TRUNCATE_EXISTING,
                StandardOpenOption.WRITE)) {
            writeFully(out, head);
            for (TensorSource t : ordered) {
                long[] written = {0};
                t.writeTo(bytes -> {
                    written[0] += bytes.remaining();
                    writeFully(out, bytes);
                });
                if (written[0] != t.byteLength()) {
                    throw new SafetensorsException(target, "tensor '" + t.name() + "' produced " + written[0]
                            + " bytes, expected " + t.byteLength());
                }
            }
            out.force(false);
        } catch (IOException e) {
            deleteQuietly(partial);
            throw new SafetensorsException(target, "write failed: " + e.getMessage(), e);
        } catch (RuntimeException e) {
            deleteQuietly(partial);
            throw e;
        }
        try {
            Files.move(partial, target, java.nio.file.StandardCopyOption.REPLACE_EXISTING,
                    java.nio.file.StandardCopyOption.ATOMIC_MOVE);
        } catch (IOException e) {
            deleteQuietly(partial);
            throw new SafetensorsException(target, "cannot move finished file into place: " + e.getMessage(), e);
        }
        return offset;
    }

    private static void writeFully(FileChannel out, ByteBuffer bytes) throws IOException {
        while (bytes.hasRemaining()) {
            out.write(bytes);
        }
    }

    private static void deleteQuietly(Path p) {
        try {
            Files.deleteIfExists(p);
        } catch (IOException ignored) {
            // best effort: the original failure is what the caller needs to see
        }
    }
}
