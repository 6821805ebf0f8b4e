package io.whittle.tensor;

import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Accounts for off-heap host memory, in the manner of Arrow's allocators: a tree of allocators with optional
 * limits; each tracks what it has outstanding and its peak, and {@link #close()} fails loudly when tensors
 * allocated from it are still open (a leak). A job gets a child of {@link #root()} and closes it at the end.
 */
public final class HostAllocator implements AutoCloseable {

    private static final HostAllocator ROOT = new HostAllocator("root", null, Long.MAX_VALUE);

    private final String name;
    private final HostAllocator parent;
    private final long limit;
    private final AtomicLong allocated = new AtomicLong();
    private final AtomicLong peak = new AtomicLong();
    private final Map<Long, String> outstanding = new LinkedHashMap<>();
    private final Map<String, HostAllocator> children = new LinkedHashMap<>();
    private volatile boolean closed;

    private HostAllocator(String name, HostAllocator parent, long limit) {
        this.name = name;
        this.parent = parent;
        this.limit = limit;
    }

    /** The process-wide allocator; never closed. */
    public static HostAllocator root() {
        return ROOT;
    }

    /** A child allocator with a byte limit (Long.MAX_VALUE for none). */
    public HostAllocator newChild(String childName, long byteLimit) {
        assertOpen();
        HostAllocator child = new HostAllocator(name + "/" + childName, this, byteLimit);
        synchronized (children) {
            children.put(child.name + "#" + System.identityHashCode(child), child);
        }
        return child;
    }

    public FloatTensor allocate(Shape shape) {
        return allocate(shape, "tensor");
    }

    /** Allocates a zero-filled fp32 tensor; {@code label} names it in leak reports. */
    public FloatTensor allocate(Shape shape, String label) {
        long bytes = Math.multiplyExact(shape.numel(), 4L);
        reserve(bytes, label);
        long address;
        try {
            address = UnsafeMemory.allocate(bytes);
        } catch (OutOfMemoryError e) {
            release(bytes);
            throw new OutOfMemoryError(name + " - cannot allocate " + bytes + " bytes for " + label + " " + shape
                    + " (allocated=" + allocated.get() + ", peak=" + peak.get() + ")");
        }
        synchronized (outstanding) {
            outstanding.put(address, label + " " + shape);
        }
        return new FloatTensor(this, address, shape);
    }

    void free(long address, long bytes) {
        synchronized (outstanding) {
            outstanding.remove(address);
        }
        UnsafeMemory.free(address);
        release(bytes);
    }

    private void reserve(long bytes, String label) {
        assertOpen();
        long now = allocated.addAndGet(bytes);
        if (now > limit) {
            allocated.addAndGet(-bytes);
            throw new OutOfMemoryError(name + " - allocating " + bytes + " bytes for " + label + " would exceed the limit of "
                    + limit + " bytes (allocated=" + (now - bytes) + ", peak=" + peak.get() + ")");
        }
        if (parent != null) {
            try {
                parent.reserve(bytes, label);
            } catch (OutOfMemoryError e) {
                allocated.addAndGet(-bytes);
                throw e;
            }
        }
        peak.accumulateAndGet(now, Math::max); // only once the whole chain has granted it
    }

    private void release(long bytes) {
        allocated.addAndGet(-bytes);
        if (parent != null) {
            parent.release(bytes);
        }
    }

    public long allocatedBytes() {
        return allocated.get();
    }

    public long peakBytes() {
        return peak.get();
    }

    public String name() {
        return name;
    }

    private void assertOpen() {
        if (closed) {
            throw new IllegalStateException("allocator " + name + " is closed");
        }
    }

    /** Closes this allocator; throws {@link IllegalStateException} listing what is still allocated (a leak). */
    @Override
    public void close() {
        if (this == ROOT || closed) {
            return;
        }
        closed = true;
        if (parent != null) {
            synchronized (parent.children) {
                parent.children.values().remove(this);
            }
        }
        long leaked = allocated.get();
        if (leaked != 0) {
            String list;
            synchronized (outstanding) {
                list = outstanding.values().toString();
            }
            throw new IllegalStateException("Memory was leaked by " + name + ": " + leaked + " bytes still allocated in "
                    + outstanding.size() + " tensor(s) " + list);
        }
    }
}
