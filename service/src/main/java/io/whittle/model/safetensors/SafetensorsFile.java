package io.whittle.model.safetensors;

import io.whittle.tensor.DType;
import io.whittle.tensor.FloatFormats;
import io.whittle.tensor.FloatTensor;
import io.whittle.tensor.HostAllocator;
import io.whittle.tensor.Shape;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Comparator;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import tools.jackson.core.JacksonException;
import tools.jackson.core.JsonParser;
import tools.jackson.core.JsonToken;
import tools.jackson.databind.DeserializationFeature;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.ObjectReader;
import tools.jackson.databind.json.JsonMapper;

/**
 * A safetensors file opened read-only. The header is parsed and validated completely on open (the rules of the
 * reference implementation: header length bound, JSON object, known dtypes, byte length = numel x dtype size,
 * offsets contiguous from 0 without holes or overlaps, data section exactly covered). Tensor data is never read
 * whole: reads are positional and chunked, so tensors of any size work and concurrent readers are safe.
 */
public final class SafetensorsFile implements AutoCloseable {

    /** The reference implementation's cap on the JSON header. */
    public static final long MAX_HEADER_BYTES = 100_000_000L;

    /** Strict about repeated keys inside a tensor entry; repeated tensor names are caught while parsing. */
    static final JsonMapper JSON = JsonMapper.builder()
            .enable(DeserializationFeature.FAIL_ON_READING_DUP_TREE_KEY)
            .build();

    /** Reads one value of the header; the rest of the header follows it, so trailing tokens are expected. */
    private static final ObjectReader VALUE_READER = JSON.readerFor(JsonNode.class)
            .without(DeserializationFeature.FAIL_ON_TRAILING_TOKENS);

    private static final int CHUNK_BYTES = 8 << 20;

    private final Path path;
    private final FileChannel channel;
    private final long dataStart;
    private final Map<String, TensorEntry> entries;
    private final Map<String, String> metadata;

    private SafetensorsFile(Path path, FileChannel channel, long dataStart, Map<String, TensorEntry> entries,
                            Map<String, String> metadata) {
        this.path = path;
        this.channel = channel;
        this.dataStart = dataStart;
        this.entries = entries;
        this.metadata = metadata;
    }

    public static SafetensorsFile open(Path path) {
        FileChannel channel;
        try {
            channel = FileChannel.open(path, StandardOpenOption.READ);
        } catch (NoSuchFileException e) {
            throw new SafetensorsException(path, "file does not exist");
        } catch (IOException e) {
            throw new SafetensorsException(path, "cannot open: " + e.getMessage(), e);
        }
        try {
            return parse(path, channel);
        } catch (RuntimeException e) {
            closeQuietly(channel);
            throw e;
        }
    }

    private static SafetensorsFile parse(Path path, FileChannel channel) {
        long fileSize;
        try {
            fileSize = channel.size();
        } catch (IOException e) {
            throw new SafetensorsException(path, "cannot read file size: " + e.getMessage(), e);
        }
        if (fileSize < 8) {
            throw new SafetensorsException(path, "truncated file: " + fileSize + " bytes, shorter than the 8-byte header length");
        }
        ByteBuffer lenBuf = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN);
        readFully(path, channel, lenBuf, 0);
        long headerLen = lenBuf.flip().getLong();
        if (headerLen < 0 || headerLen > MAX_HEADER_BYTES) {
            throw new SafetensorsException(path, "header length " + Long.toUnsignedString(headerLen)
                    + " exceeds the limit of " + MAX_HEADER_BYTES + " bytes (not a safetensors file, or corrupt)");
        }
        if (8 + headerLen > fileSize) {
            throw new SafetensorsException(path, "truncated file: header length " + headerLen + " runs past the end of the "
                    + fileSize + "-byte file");
        }
        ByteBuffer headerBuf = ByteBuffer.allocate((int) headerLen);
        readFully(path, channel, headerBuf, 8);
        String headerText;
        try {
            // the reference reader rejects invalid UTF-8; a lenient decoder would silently substitute U+FFFD
            headerText = StandardCharsets.UTF_8.newDecoder()
                    .onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT)
                    .decode(headerBuf.flip()).toString();
        } catch (CharacterCodingException e) {
            throw new SafetensorsException(path, "invalid header: not valid UTF-8");
        }
        if (!headerText.startsWith("{")) {
            throw new SafetensorsException(path, "invalid header: JSON must start with '{'");
        }
        long dataStart = 8 + headerLen;
        Map<String, String> metadata = new LinkedHashMap<>();
        List<TensorEntry> list = new ArrayList<>();
        Set<String> seen = new HashSet<>();
        // Top-level properties are walked by hand so that a repeated name is reported as such (a tree would
        // keep only the last one); the value of each is then read as a tree.
        try (JsonParser parser = JSON.createParser(headerText)) {
            if (parser.nextToken() != JsonToken.START_OBJECT) {
                throw new SafetensorsException(path, "invalid header: not a JSON object");
            }
            JsonToken token;
            while ((token = parser.nextToken()) == JsonToken.PROPERTY_NAME) {
                String name = parser.currentName();
                if (!seen.add(name)) {
                    throw new SafetensorsException(path, name.equals("__metadata__") ? "duplicate '__metadata__' entry"
                            : "duplicate tensor name '" + name + "' in the header");
                }
                parser.nextToken();
                JsonNode node = VALUE_READER.readValue(parser);
                if (name.equals("__metadata__")) {
                    parseMetadata(path, node, metadata);
                } else {
                    list.add(parseEntry(path, name, node, dataStart));
                }
            }
            if (token != JsonToken.END_OBJECT) {
                throw new SafetensorsException(path, "invalid header JSON: unexpected " + token);
            }
            if (parser.nextToken() != null) {
                throw new SafetensorsException(path, "invalid header JSON: trailing content after the header object");
            }
        } catch (JacksonException e) {
            throw new SafetensorsException(path, "invalid header JSON: " + e.getOriginalMessage(), e);
        }
        List<TensorEntry> sorted = new ArrayList<>(list);
        sorted.sort(Comparator.comparingLong(TensorEntry::begin).thenComparingLong(TensorEntry::end));
        long expected = 0;
        TensorEntry previous = null;
        for (TensorEntry e : sorted) {
            if (e.begin() != expected) {
                String what = e.begin() < expected
                        ? "overlap tensor '" + previous.name() + "' [" + previous.begin() + ", " + previous.end() + "]"
                        : "leave a hole of " + (e.begin() - expected) + " bytes before it (the data must be contiguous)";
                throw new SafetensorsException(path, "tensor '" + e.name() + "': data_offsets [" + e.begin() + ", " + e.end()
                        + "] " + what + "; expected it to start at " + expected);
            }
            expected = e.end();
            previous = e;
        }
        long dataLen = fileSize - dataStart;
        if (expected > dataLen) {
            TensorEntry last = sorted.get(sorted.size() - 1);
            throw new SafetensorsException(path, "tensor '" + last.name() + "': data_offsets [" + last.begin() + ", " + last.end()
                    + "] are out of range: the data section has only " + dataLen + " bytes (truncated file or corrupt header)");
        }
        if (expected < dataLen) {
            throw new SafetensorsException(path, "data section has " + (dataLen - expected)
                    + " trailing bytes not covered by any tensor");
        }
        Map<String, TensorEntry> entries = new LinkedHashMap<>();
        for (TensorEntry e : list) {
            entries.put(e.name(), e);
        }
        return new SafetensorsFile(path, channel, dataStart, Collections.unmodifiableMap(entries),
                Collections.unmodifiableMap(metadata));
    }

    private static void parseMetadata(Path path, JsonNode node, Map<String, String> metadata) {
        if (node.isNull()) {
            return; // the reference reader treats a null __metadata__ as absent
        }
        if (!node.isObject()) {
            throw new SafetensorsException(path, "__metadata__ must be a map of strings to strings, got " + node.getNodeType());
        }
        for (Map.Entry<String, JsonNode> m : node.properties()) {
            if (!m.getValue().isString()) {
                throw new SafetensorsException(path, "__metadata__ value of '" + m.getKey() + "' is not a string: " + m.getValue());
            }
            metadata.put(m.getKey(), m.getValue().stringValue());
        }
    }

    private static TensorEntry parseEntry(Path path, String name, JsonNode node, long dataStart) {
        if (!node.isObject()) {
            throw new SafetensorsException(path, "tensor '" + name + "': header entry is not an object");
        }
        JsonNode dtypeNode = node.get("dtype");
        if (dtypeNode == null || !dtypeNode.isString()) {
            throw new SafetensorsException(path, "tensor '" + name + "': missing dtype");
        }
        DType dtype = DType.fromSafetensorsName(dtypeNode.stringValue()).orElseThrow(() -> new SafetensorsException(path,
                "tensor '" + name + "': unknown or unsupported dtype '" + dtypeNode.stringValue() + "' (supported: "
                        + java.util.Arrays.stream(DType.values()).map(DType::safetensorsName)
                                .collect(java.util.stream.Collectors.joining(", ")) + ")"));
        JsonNode shapeNode = node.get("shape");
        if (shapeNode == null || !shapeNode.isArray()) {
            throw new SafetensorsException(path, "tensor '" + name + "': missing shape");
        }
        long[] dims = new long[shapeNode.size()];
        for (int i = 0; i < dims.length; i++) {
            JsonNode d = shapeNode.get(i);
            if (d == null || !d.isIntegralNumber() || !d.canConvertToLong() || d.longValue() < 0) {
                throw new SafetensorsException(path, "tensor '" + name + "': invalid shape " + shapeNode);
            }
            dims[i] = d.longValue();
        }
        JsonNode offs = node.get("data_offsets");
        if (offs == null || !offs.isArray() || offs.size() != 2 || !offs.get(0).isIntegralNumber()
                || !offs.get(1).isIntegralNumber() || !offs.get(0).canConvertToLong() || !offs.get(1).canConvertToLong()) {
            throw new SafetensorsException(path, "tensor '" + name + "': data_offsets must be [begin, end]");
        }
        long begin = offs.get(0).longValue();
        long end = offs.get(1).longValue();
        if (begin < 0 || end < begin) {
            throw new SafetensorsException(path, "tensor '" + name + "': invalid data_offsets [" + begin + ", " + end + "]");
        }
        Shape shape = Shape.of(dims);
        long expectedBytes;
        try {
            expectedBytes = Math.multiplyExact(shape.numel(), (long) dtype.byteSize());
        } catch (ArithmeticException e) {
            throw new SafetensorsException(path, "tensor '" + name + "': shape " + shape + " is too large");
        }
        if (end - begin != expectedBytes) {
            throw new SafetensorsException(path, "tensor '" + name + "': shape " + shape + " x " + dtype.safetensorsName()
                    + " needs " + expectedBytes + " bytes but data_offsets [" + begin + ", " + end + "] span " + (end - begin));
        }
        return new TensorEntry(name, dtype, shape, begin, end, dataStart + begin);
    }

    public Path path() {
        return path;
    }

    /** Tensors in header order. */
    public Map<String, TensorEntry> entries() {
        return entries;
    }

    public Map<String, String> metadata() {
        return metadata;
    }

    public boolean contains(String name) {
        return entries.containsKey(name);
    }

    public TensorEntry entry(String name) {
        TensorEntry e = entries.get(name);
        if (e == null) {
            throw new SafetensorsException(path, "no tensor named '" + name + "'");
        }
        return e;
    }

    /** Reads {@code dst.remaining()} raw bytes of tensor {@code name} starting at byte {@code offset} of the tensor. */
    public void readBytes(TensorEntry e, long offset, ByteBuffer dst) {
        if (offset < 0 || offset + dst.remaining() > e.byteLength()) {
            throw new SafetensorsException(path, "tensor '" + e.name() + "': read of " + dst.remaining() + " bytes at "
                    + offset + " is outside its " + e.byteLength() + " bytes");
        }
        readFully(path, channel, dst, e.fileOffset() + offset);
    }

    /** Reads the whole tensor, converted to fp32. */
    public FloatTensor readFloat(String name, HostAllocator allocator) {
        TensorEntry e = entry(name);
        FloatTensor t = allocator.allocate(e.shape(), name);
        try {
            readFloats(e, 0, e.numel(), t, 0);
        } catch (RuntimeException ex) {
            t.close();
            throw ex;
        }
        return t;
    }

    /**
     * Reads elements [first, first + count) of the tensor converted to fp32 into {@code dst} at {@code dstPos}.
     * Float types convert exactly; integer types are cast.
     */
    public void readFloats(TensorEntry e, long first, long count, FloatTensor dst, long dstPos) {
        int size = e.dtype().byteSize();
        ByteBuffer buf = ByteBuffer.allocate((int) Math.min(CHUNK_BYTES, Math.max(size, count * size))).order(ByteOrder.LITTLE_ENDIAN);
        int perChunk = buf.capacity() / size;
        float[] chunk = new float[(int) Math.min(perChunk, count)];
        long done = 0;
        while (done < count) {
            int n = (int) Math.min(perChunk, count - done);
            buf.clear().limit(n * size);
            readBytes(e, (first + done) * size, buf);
            buf.flip();
            for (int i = 0; i < n; i++) {
                chunk[i] = decode(e.dtype(), buf, i * size);
            }
            dst.copyFrom(chunk, 0, dstPos + done, n);
            done += n;
        }
    }

    /** Reads an integer tensor (I8..I64, U8, BOOL) as longs; for token ids and other index data. */
    public long[] readLongs(String name) {
        TensorEntry e = entry(name);
        if (e.dtype().isFloatingPoint()) {
            throw new SafetensorsException(path, "tensor '" + name + "' has float dtype " + e.dtype().safetensorsName()
                    + " where an integer tensor is required");
        }
        long n = e.numel();
        if (n > Integer.MAX_VALUE - 8) {
            throw new SafetensorsException(path, "tensor '" + name + "' has " + n + " elements, too many to read as an index array");
        }
        long[] out = new long[(int) n];
        int size = e.dtype().byteSize();
        // chunked: an I64 tensor of up to 2^31 elements is 16 GiB, more than one ByteBuffer can hold
        int perChunk = CHUNK_BYTES / size;
        ByteBuffer buf = ByteBuffer.allocate((int) Math.min(CHUNK_BYTES, Math.max(size, n * size))).order(ByteOrder.LITTLE_ENDIAN);
        for (int done = 0; done < out.length; ) {
            int m = (int) Math.min(perChunk, out.length - done);
            buf.clear().limit(m * size);
            readBytes(e, (long) done * size, buf);
            buf.flip();
            for (int i = 0; i < m; i++) {
                int at = i * size;
                out[done + i] = switch (e.dtype()) {
                    case I8 -> buf.get(at);
                    case U8, BOOL -> buf.get(at) & 0xFF;
                    case I16 -> buf.getShort(at);
                    case I32 -> buf.getInt(at);
                    case I64 -> buf.getLong(at);
                    default -> throw new IllegalStateException("unreachable");
                };
            }
            done += m;
        }
        return out;
    }

    static float decode(DType dtype, ByteBuffer buf, int at) {
        return switch (dtype) {
            case BF16 -> FloatFormats.bf16ToFloat(buf.getShort(at));
            case F16 -> FloatFormats.halfToFloat(buf.getShort(at));
            case F32 -> buf.getFloat(at);
            case F64 -> (float) buf.getDouble(at);
            case F8_E4M3 -> FloatFormats.fp8E4M3ToFloat(buf.get(at));
            case I8 -> buf.get(at);
            case U8, BOOL -> buf.get(at) & 0xFF;
            case I16 -> buf.getShort(at);
            case I32 -> buf.getInt(at);
            case I64 -> buf.getLong(at);
        };
    }

    private static void readFully(Path path, FileChannel channel, ByteBuffer dst, long position) {
        long pos = position;
        try {
            while (dst.hasRemaining()) {
                int n = channel.read(dst, pos);
                if (n < 0) {
                    throw new SafetensorsException(path, "truncated file: unexpected end of file at byte " + pos);
                }
                pos += n;
            }
        } catch (IOException e) {
            throw new SafetensorsException(path, "read failed at byte " + pos + ": " + e.getMessage(), e);
        }
    }

    private static void closeQuietly(FileChannel channel) {
        try {
            channel.close();
        } catch (IOException ignored) {
            // the open failed already; that error is the one to report
        }
    }

    @Override
    public void close() {
        try {
            channel.close();
        } catch (IOException e) {
            throw new SafetensorsException(path, "close failed: " + e.getMessage(), e);
        }
    }
}
