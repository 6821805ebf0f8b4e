package io.whittle.tensor;

import static io.whittle.tensor.UnsafeMemory.UNSAFE;

import java.util.Objects;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * A row-major fp32 tensor in off-heap host memory, owned by the {@link HostAllocator} that made it and released
 * by {@link #close()} (idempotent). Views ({@link #view}, {@link #reshape}, {@link #rowSlice}) share the memory
 * of their owner, do not free it, and fail once the owner is closed. Indexing is checked; element access is a
 * plain memory load, so loops over tensors are as fast as over arrays.
 */
public final class FloatTensor implements Tensor {

    private final HostAllocator allocator; // null for views
    private final FloatTensor owner;       // null for owners
    private final long address;
    private final Shape shape;
    private final long numel;
    private final AtomicBoolean closed = new AtomicBoolean();

    FloatTensor(HostAllocator allocator, long address, Shape shape) {
        this.allocator = allocator;
        this.owner = null;
        this.address = address;
        this.shape = shape;
        this.numel = shape.numel();
    }

    private FloatTensor(FloatTensor owner, long address, Shape shape) {
        this.allocator = null;
        this.owner = owner;
        this.address = address;
        this.shape = shape;
        this.numel = shape.numel();
    }

    /** Allocates a zero-filled tensor from the root allocator. */
    public static FloatTensor zeros(Shape shape) {
        return HostAllocator.root().allocate(shape);
    }

    public static FloatTensor zeros(long... dims) {
        return zeros(Shape.of(dims));
    }

    public static FloatTensor of(Shape shape, float[] values) {
        if (values.length != shape.numel()) {
            throw new IllegalArgumentException("shape " + shape + " needs " + shape.numel() + " values, got " + values.length);
        }
        FloatTensor t = zeros(shape);
        t.copyFrom(values, 0, 0, values.length);
        return t;
    }

    @Override
    public Shape shape() {
        return shape;
    }

    @Override
    public long numel() {
        return numel;
    }

    /** Raw address of element 0, for native libraries (BLAS) only. */
    public long address() {
        assertOpen();
        return address;
    }

    public boolean isView() {
        return owner != null;
    }

    public float get(long i) {
        checkIndex(i);
        return UNSAFE.getFloat(address + 4 * i);
    }

    public void set(long i, float v) {
        checkIndex(i);
        UNSAFE.putFloat(address + 4 * i, v);
    }

    public void add(long i, float v) {
        checkIndex(i);
        long a = address + 4 * i;
        UNSAFE.putFloat(a, UNSAFE.getFloat(a) + v);
    }

    public float get(long row, long col) {
        return get(flatIndex(row, col));
    }

    public void set(long row, long col, float v) {
        set(flatIndex(row, col), v);
    }

    /** Checks the column too: an overlong column would otherwise silently read the next row. */
    private long flatIndex(long row, long col) {
        long cols = shape.cols();
        if (col < 0 || col >= cols || row < 0 || row >= shape.rows()) {
            throw new IndexOutOfBoundsException("element (" + row + ", " + col + ") out of bounds for tensor " + shape);
        }
        return row * cols + col;
    }

    public void fill(float v) {
        assertOpen();
        for (long i = 0; i < numel; i++) {
            UNSAFE.putFloat(address + 4 * i, v);
        }
    }

    public void copyFrom(float[] src, int srcPos, long dstPos, int length) {
        Objects.checkFromIndexSize(srcPos, length, src.length); // a raw copy past the array would corrupt the heap
        checkRange(dstPos, length);
        UNSAFE.copyMemory(src, UnsafeMemory.FLOAT_ARRAY_BASE + 4L * srcPos, null, address + 4 * dstPos, 4L * length);
    }

    public void copyTo(long srcPos, float[] dst, int dstPos, int length) {
        Objects.checkFromIndexSize(dstPos, length, dst.length);
        checkRange(srcPos, length);
        UNSAFE.copyMemory(null, address + 4 * srcPos, dst, UnsafeMemory.FLOAT_ARRAY_BASE + 4L * dstPos, 4L * length);
    }

    /** Copies {@code length} elements from {@code src} (at srcPos) into this tensor (at dstPos). */
    public void copyFrom(FloatTensor src, long srcPos, long dstPos, long length) {
        src.checkRange(srcPos, length);
        checkRange(dstPos, length);
        UNSAFE.copyMemory(src.address + 4 * srcPos, address + 4 * dstPos, 4 * length);
    }

    public float[] toArray() {
        float[] out = new float[Math.toIntExact(numel)];
        copyTo(0, out, 0, out.length);
        return out;
    }

    public float[] row(long r) {
        int c = cols();
        float[] out = new float[c];
        copyTo(r * c, out, 0, c);
        return out;
    }

    /** A deep copy owned by {@code alloc}. */
    public FloatTensor copy(HostAllocator alloc) {
        FloatTensor t = alloc.allocate(shape, "copy");
        t.copyFrom(this, 0, 0, numel);
        return t;
    }

    public FloatTensor copy() {
        return copy(HostAllocator.root());
    }

    @Override
    public FloatTensor view(long offset, Shape newShape) {
        checkRange(offset, newShape.numel());
        return new FloatTensor(root(), address + 4 * offset, newShape);
    }

    @Override
    public FloatTensor reshape(Shape newShape) {
        if (newShape.numel() != numel) {
            throw new IllegalArgumentException("cannot reshape " + shape + " to " + newShape);
        }
        return view(0, newShape);
    }

    @Override
    public FloatTensor reshape(long... dims) {
        return reshape(Shape.of(dims));
    }

    @Override
    public FloatTensor rowSlice(long from, long count) {
        long c = shape.cols();
        return view(from * c, Shape.of(count, c));
    }

    private FloatTensor root() {
        return owner == null ? this : owner;
    }

    private void checkIndex(long i) {
        if (i < 0 || i >= numel) {
            throw new IndexOutOfBoundsException("index " + i + " out of bounds for tensor " + shape);
        }
        assertOpen();
    }

    private void checkRange(long from, long length) {
        if (from < 0 || length < 0 || from + length > numel) {
            throw new IndexOutOfBoundsException("range [" + from + ", " + (from + length) + ") out of bounds for tensor " + shape);
        }
        assertOpen();
    }

    private void assertOpen() {
        if (closed.get() || (owner != null && owner.closed.get())) {
            throw new IllegalStateException("tensor " + shape + " has been closed");
        }
    }

    public boolean isClosed() {
        return closed.get() || (owner != null && owner.closed.get());
    }

    @Override
    public void close() {
        if (closed.compareAndSet(false, true) && owner == null) {
            allocator.free(address, 4 * numel);
        }
    }

    @Override
    public String toString() {
        return "FloatTensor" + shape + (isView() ? " (view)" : "");
    }
}
