package io.whittle.methods.camera.quant;

import io.whittle.model.Checkpoint;
import io.whittle.model.safetensors.TensorEntry;
import io.whittle.model.safetensors.TensorSource;
import io.whittle.tensor.DType;
import io.whittle.tensor.FloatFormats;
import io.whittle.tensor.Shape;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/** Little-endian encoding and decoding of the small integer and scale tensors the quantized formats store. */
final class TensorBytes {

    private TensorBytes() {
    }

    static TensorSource ints(String name, Shape shape, int[] values) {
        ByteBuffer b = ByteBuffer.allocate(values.length * 4).order(ByteOrder.LITTLE_ENDIAN);
        for (int v : values) {
            b.putInt(v);
        }
        return TensorSource.ofBytes(name, DType.I32, shape, b.array());
    }

    static TensorSource longs(String name, Shape shape, long[] values) {
        return TensorSource.ofLongs(name, DType.I64, shape, values);
    }

    /** fp32 values that are exact in {@code dtype} (F16 or BF16, or F32). */
    static TensorSource floats(String name, DType dtype, Shape shape, float[] values) {
        ByteBuffer b = ByteBuffer.allocate(values.length * dtype.byteSize()).order(ByteOrder.LITTLE_ENDIAN);
        for (float v : values) {
            switch (dtype) {
                case F16 -> b.putShort(FloatFormats.floatToHalf(v));
                case BF16 -> b.putShort(FloatFormats.floatToBf16(v));
                case F32 -> b.putFloat(v);
                default -> throw new IllegalArgumentException("tensor '" + name + "': cannot store floats as " + dtype);
            }
        }
        return TensorSource.ofBytes(name, dtype, shape, b.array());
    }

    /** The raw bytes of a tensor. */
    static byte[] read(Checkpoint checkpoint, String name) {
        TensorEntry e = checkpoint.entry(name);
        if (e.byteLength() > Integer.MAX_VALUE - 8) {
            throw new IllegalArgumentException("tensor '" + name + "' (" + e.byteLength() + " bytes) is too large to read whole");
        }
        ByteBuffer buf = ByteBuffer.allocate((int) e.byteLength());
        checkpoint.file(name).readBytes(e, 0, buf);
        return buf.array();
    }

    static TensorEntry require(Checkpoint checkpoint, String name, DType dtype, Shape shape) {
        if (!checkpoint.contains(name)) {
            throw new IllegalArgumentException("checkpoint has no tensor '" + name + "'");
        }
        TensorEntry e = checkpoint.entry(name);
        if (e.dtype() != dtype) {
            throw new IllegalArgumentException("tensor '" + name + "' is " + e.dtype() + ", expected " + dtype);
        }
        if (shape != null && !e.shape().equals(shape)) {
            throw new IllegalArgumentException("tensor '" + name + "' has shape " + e.shape() + ", expected " + shape);
        }
        return e;
    }

    static int[] readInts(Checkpoint checkpoint, String name, Shape shape) {
        require(checkpoint, name, DType.I32, shape);
        ByteBuffer b = ByteBuffer.wrap(read(checkpoint, name)).order(ByteOrder.LITTLE_ENDIAN);
        int[] out = new int[b.remaining() / 4];
        for (int i = 0; i < out.length; i++) {
            out[i] = b.getInt();
        }
        return out;
    }

    static float[] readFloats(Checkpoint checkpoint, String name, DType dtype, Shape shape) {
        require(checkpoint, name, dtype, shape);
        ByteBuffer b = ByteBuffer.wrap(read(checkpoint, name)).order(ByteOrder.LITTLE_ENDIAN);
        float[] out = new float[b.remaining() / dtype.byteSize()];
        for (int i = 0; i < out.length; i++) {
            out[i] = switch (dtype) {
                case F16 -> FloatFormats.halfToFloat(b.getShort());
                case BF16 -> FloatFormats.bf16ToFloat(b.getShort());
                case F32 -> b.getFloat();
                default -> throw new IllegalArgumentException("tensor '" + name + "': not a float tensor");
            };
        }
        return out;
    }
}
