package io.whittle.kernels;

import java.util.concurrent.atomic.AtomicBoolean;

/**
 * A block of device memory from a {@link DeviceAllocator}. {@link #close()} returns it (idempotent: a second
 * close does nothing); {@link #address()} after close fails, naming the buffer, instead of handing a kernel a
 * dangling pointer.
 */
public final class DeviceBuffer implements AutoCloseable {

    private final DeviceAllocator allocator;
    private final long address;
    private final long bytes;
    private final String label;
    private final AtomicBoolean closed = new AtomicBoolean();

    DeviceBuffer(DeviceAllocator allocator, long address, long bytes, String label) {
        this.allocator = allocator;
        this.address = address;
        this.bytes = bytes;
        this.label = label;
    }

    /** Device address of byte 0. */
    public long address() {
        if (closed.get()) {
            throw new IllegalStateException("device buffer '" + label + "' (" + bytes + " bytes) of " + allocator.name()
                    + " has been closed");
        }
        return address;
    }

    /** Device address of byte {@code offset}, checked against the buffer's size. */
    public long address(long offset) {
        if (offset < 0 || offset > bytes) {
            throw new IndexOutOfBoundsException("offset " + offset + " outside device buffer '" + label + "' of " + bytes + " bytes");
        }
        return address() + offset;
    }

    public long bytes() {
        return bytes;
    }

    public String label() {
        return label;
    }

    public boolean isClosed() {
        return closed.get();
    }

    @Override
    public void close() {
        if (closed.compareAndSet(false, true)) {
            allocator.free(this);
        }
    }

    /** Marks the buffer closed without freeing it (its allocator freed it while reporting a leak). */
    void markFreed() {
        closed.set(true);
    }

    long rawAddress() {
        return address;
    }

    @Override
    public String toString() {
        return "DeviceBuffer[" + label + ", " + Bytes.format(bytes) + (closed.get() ? ", closed]" : "]");
    }
}
