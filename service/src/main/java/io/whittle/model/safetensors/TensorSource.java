package io.whittle.model.safetensors;

import io.whittle.tensor.DType;
import io.whittle.tensor.FloatFormats;
import io.whittle.tensor.FloatTensor;
import io.whittle.tensor.Shape;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * A tensor to be written: its name, dtype, shape and a way to produce its little-endian bytes in chunks. Sources
 * are lazy, so a writer can stream a checkpoint without holding it in memory.
 */
public interface TensorSource {

    String name();

    DType dtype();

    Shape shape();

    /** Writes exactly {@link #byteLength()} bytes to the sink. */
    void writeTo(ByteSink sink) throws IOException;

    default long byteLength() {
        return shape().numel() * dtype().byteSize();
    }

    /** Where tensor bytes go; the writer hands out buffers of at most {@link #CHUNK} bytes. */
    interface ByteSink {
        int CHUNK = 4 << 20;

        void write(ByteBuffer bytes) throws IOException;
    }

    /** fp32 values stored as {@code dtype} (rounded to nearest even for bf16/f16). */
    static TensorSource ofFloat(String name, DType dtype, FloatTensor values) {
        if (!dtype.isFloatingPoint() || !dtype.isWritable()) {
            throw new IllegalArgumentException("tensor '" + name + "': cannot store fp32 values as " + dtype);
        }
        return lazy(name, dtype, values.shape(), sink -> {
                int size = dtype.byteSize();
                int per = ByteSink.CHUNK / size;
                ByteBuffer buf = ByteBuffer.allocate(per * size).order(ByteOrder.LITTLE_ENDIAN);
                float[] chunk = new float[per];
                long n = values.numel();
                for (long done = 0; done < n; ) {
                    int m = (int) Math.min(per, n - done);
                    values.copyTo(done, chunk, 0, m);
                    buf.clear();
                    for (int i = 0; i < m; i++) {
                        float v = chunk[i];
                        switch (dtype) {
                            case BF16 -> buf.putShort(FloatFormats.floatToBf16(v));
                            case F16 -> buf.putShort(FloatFormats.floatToHalf(v));
                            case F32 -> buf.putFloat(v);
                            case F64 -> buf.putDouble(v);
                            default -> throw new IllegalStateException("unreachable");
                        }
                    }
                    buf.flip();
                    sink.write(buf);
                    done += m;
                }
        });
    }

    /** The exact bytes of a tensor of another safetensors file, under a new name if wanted. */
    static TensorSource copyOf(SafetensorsFile file, TensorEntry entry, String newName) {
        return lazy(newName, entry.dtype(), entry.shape(), sink -> {
                ByteBuffer buf = ByteBuffer.allocate((int) Math.min(ByteSink.CHUNK, Math.max(1, entry.byteLength())));
                for (long done = 0; done < entry.byteLength(); ) {
                    int m = (int) Math.min(buf.capacity(), entry.byteLength() - done);
                    buf.clear().limit(m);
                    file.readBytes(entry, done, buf);
                    buf.flip();
                    sink.write(buf);
                    done += m;
                }
        });
    }

    /** Integer data (I8, U8, BOOL, I16, I32, I64) from longs. */
    static TensorSource ofLongs(String name, DType dtype, Shape shape, long[] values) {
        if (dtype.isFloatingPoint()) {
            throw new IllegalArgumentException("tensor '" + name + "': " + dtype + " is not an integer type");
        }
        if (values.length != shape.numel()) {
            throw new IllegalArgumentException("tensor '" + name + "': shape " + shape + " needs " + shape.numel()
                    + " values, got " + values.length);
        }
        long min = switch (dtype) {
            case BOOL, U8 -> 0;
            case I8 -> Byte.MIN_VALUE;
            case I16 -> Short.MIN_VALUE;
            case I32 -> Integer.MIN_VALUE;
            default -> Long.MIN_VALUE;
        };
        long max = switch (dtype) {
            case BOOL -> 1;
            case U8 -> 255;
            case I8 -> Byte.MAX_VALUE;
            case I16 -> Short.MAX_VALUE;
            case I32 -> Integer.MAX_VALUE;
            default -> Long.MAX_VALUE;
        };
        ByteBuffer buf = ByteBuffer.allocate(values.length * dtype.byteSize()).order(ByteOrder.LITTLE_ENDIAN);
        for (int i = 0; i < values.length; i++) {
            long v = values[i];
            if (v < min || v > max) { // a silent wrap-around would corrupt token ids or masks
                throw new IllegalArgumentException("tensor '" + name + "': value " + v + " at index " + i
                        + " does not fit in " + dtype.safetensorsName() + " [" + min + ", " + max + "]");
            }
            switch (dtype) {
                case I8, U8, BOOL -> buf.put((byte) v);
                case I16 -> buf.putShort((short) v);
                case I32 -> buf.putInt((int) v);
                case I64 -> buf.putLong(v);
                default -> throw new IllegalStateException("unreachable");
            }
        }
        return ofBytes(name, dtype, shape, buf.array());
    }

    /** Raw little-endian bytes. */
    static TensorSource ofBytes(String name, DType dtype, Shape shape, byte[] bytes) {
        if (bytes.length != shape.numel() * dtype.byteSize()) {
            throw new IllegalArgumentException("tensor '" + name + "': shape " + shape + " x " + dtype + " needs "
                    + shape.numel() * dtype.byteSize() + " bytes, got " + bytes.length);
        }
        return lazy(name, dtype, shape, sink -> {
            for (int off = 0; off < bytes.length; off += ByteSink.CHUNK) {
                sink.write(ByteBuffer.wrap(bytes, off, Math.min(ByteSink.CHUNK, bytes.length - off)));
            }
        });
    }

    /** Produces a tensor's bytes on demand. */
    @FunctionalInterface
    interface BytesWriter {
        void writeTo(ByteSink sink) throws IOException;
    }

    /** A source whose bytes come from {@code body} when the writer asks for them. */
    static TensorSource lazy(String name, DType dtype, Shape shape, BytesWriter body) {
        return new Lazy(name, dtype, shape, body);
    }

    /** The record behind {@link #lazy}. */
    record Lazy(String name, DType dtype, Shape shape, BytesWriter body) implements TensorSource {
        @Override
        public void writeTo(ByteSink sink) throws IOException {
            body.writeTo(sink);
        }
    }
}
