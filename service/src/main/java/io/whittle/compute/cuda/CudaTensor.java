package io.whittle.compute.cuda;

import io.whittle.kernels.DeviceBuffer;
import io.whittle.tensor.Shape;
import io.whittle.tensor.Tensor;

/**
 * An fp32 tensor in device memory, owned by a {@link CudaBackend}. Views share the owner's buffer at an element
 * offset and never free it; using a view after its owner closed fails with the buffer's name.
 */
final class CudaTensor implements Tensor {

    private final CudaBackend backend;
    private final DeviceBuffer buffer;
    private final boolean owner;
    private final long offset;
    private final Shape shape;

    CudaTensor(CudaBackend backend, DeviceBuffer buffer, boolean owner, long offset, Shape shape) {
        this.backend = backend;
        this.buffer = buffer;
        this.owner = owner;
        this.offset = offset;
        this.shape = shape;
    }

    CudaBackend backend() {
        return backend;
    }

    /** Device address of element 0. */
    long address() {
        return buffer.address() + 4 * offset;
    }

    /** Device address of element {@code i}, checked. */
    long address(long i) {
        if (i < 0 || i > numel()) {
            throw new IndexOutOfBoundsException("element " + i + " outside tensor " + shape);
        }
        return address() + 4 * i;
    }

    @Override
    public Shape shape() {
        return shape;
    }

    @Override
    public CudaTensor view(long viewOffset, Shape viewShape) {
        long n = viewShape.numel();
        if (viewOffset < 0 || viewOffset + n > numel()) {
            throw new IndexOutOfBoundsException("view [" + viewOffset + ", " + (viewOffset + n) + ") out of bounds for tensor " + shape);
        }
        buffer.address(); // fails if closed
        return new CudaTensor(backend, buffer, false, offset + viewOffset, viewShape);
    }

    boolean isClosed() {
        return buffer.isClosed();
    }

    @Override
    public void close() {
        if (owner) {
            buffer.close();
        }
    }

    @Override
    public String toString() {
        return "CudaTensor" + shape + (owner ? "" : " (view)") + " on " + backend.name();
    }
}
