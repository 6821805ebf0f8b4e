package io.whittle.kernels;

import java.util.ArrayList;
import java.util.List;
import jcuda.Pointer;

/**
 * The arguments of one kernel launch, each with its exact width: {@code i32} for {@code int}, {@code i64} for
 * {@code long long}, {@code ptr} for a device pointer, {@code f32} for {@code float}, {@code f64} for
 * {@code double}. Widths must match the kernel signature; a mismatch is silent garbage on the GPU, which is why
 * there is no untyped add.
 */
public final class KernelArgs {

    private final List<Object> values = new ArrayList<>();
    private final List<String> text = new ArrayList<>();

    public static KernelArgs of() {
        return new KernelArgs();
    }

    /** A device pointer: the buffer's address plus {@code byteOffset}. */
    public KernelArgs ptr(DeviceBuffer buffer, long byteOffset) {
        return ptr(buffer.address(byteOffset));
    }

    public KernelArgs ptr(DeviceBuffer buffer) {
        return ptr(buffer.address());
    }

    /** A raw device address (0 for a null pointer). */
    public KernelArgs ptr(long address) {
        values.add(new long[] {address});
        text.add("ptr 0x" + Long.toHexString(address));
        return this;
    }

    public KernelArgs i32(int v) {
        values.add(new int[] {v});
        text.add("i32 " + v);
        return this;
    }

    public KernelArgs i64(long v) {
        values.add(new long[] {v});
        text.add("i64 " + v);
        return this;
    }

    public KernelArgs f32(float v) {
        values.add(new float[] {v});
        text.add("f32 " + v);
        return this;
    }

    public KernelArgs f64(double v) {
        values.add(new double[] {v});
        text.add("f64 " + v);
        return this;
    }

    public int size() {
        return values.size();
    }

    /** cuLaunchKernel's kernelParams: an array of pointers, one to each argument value. */
    Pointer toPointer() {
        Pointer[] ps = new Pointer[values.size()];
        for (int i = 0; i < ps.length; i++) {
            Object v = values.get(i);
            if (v instanceof long[] l) {
                ps[i] = Pointer.to(l);
            } else if (v instanceof int[] n) {
                ps[i] = Pointer.to(n);
            } else if (v instanceof float[] f) {
                ps[i] = Pointer.to(f);
            } else {
                ps[i] = Pointer.to((double[]) v);
            }
        }
        return Pointer.to(ps);
    }

    @Override
    public String toString() {
        return text.toString();
    }
}
