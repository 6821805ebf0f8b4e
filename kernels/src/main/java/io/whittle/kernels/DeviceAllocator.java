package io.whittle.kernels;

import java.util.ArrayList;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Accounts for device memory in the manner of Arrow's allocators: a tree of named allocators, each with a byte
 * limit, its outstanding bytes and its peak. Every device allocation of a job goes through one (a child per job),
 * so the job's peak is known and a job that leaks is caught: {@link #close()} frees whatever is still allocated
 * (a failed job must not strand device memory in a long-lived worker) and then throws, listing the buffers.
 */
public final class DeviceAllocator implements AutoCloseable {

    private final String name;
    private final DeviceAllocator parent;
    private final DeviceMemory memory;
    private final long limit;
    private final AtomicLong allocated = new AtomicLong();
    private final AtomicLong peak = new AtomicLong();
    private final Map<DeviceBuffer, Boolean> outstanding = Collections.synchronizedMap(new IdentityHashMap<>());
    private final List<DeviceAllocator> children = Collections.synchronizedList(new ArrayList<>());
    private volatile boolean closed;

    private DeviceAllocator(String name, DeviceAllocator parent, DeviceMemory memory, long limit) {
        if (limit <= 0) {
            throw new IllegalArgumentException("allocator " + name + ": limit must be positive, got " + limit);
        }
        this.name = name;
        this.parent = parent;
        this.memory = memory;
        this.limit = limit;
    }

    /** A root allocator over {@code memory} with a byte limit ({@link Long#MAX_VALUE} for none). */
    public static DeviceAllocator root(String name, DeviceMemory memory, long byteLimit) {
        return new DeviceAllocator(name, null, memory, byteLimit);
    }

    /** A child (e.g. one job) drawing from this allocator, with its own limit. */
    public DeviceAllocator newChild(String childName, long byteLimit) {
        assertOpen();
        DeviceAllocator child = new DeviceAllocator(name + "/" + childName, this, memory, byteLimit);
        children.add(child);
        return child;
    }

    /**
     * {@code bytes} of device memory (contents undefined); {@code label} names it in leak reports and errors.
     *
     * @throws DeviceOutOfMemoryException when a limit in the tree or the device refuses, with the numbers
     */
    public DeviceBuffer allocate(long bytes, String label) {
        if (bytes <= 0) {
            throw new IllegalArgumentException(name + " - cannot allocate " + bytes + " bytes for " + label + " (must be positive)");
        }
        reserve(bytes, label);
        long address;
        try {
            address = memory.allocate(bytes);
        } catch (DeviceOutOfMemoryException | CudaException e) {
            release(bytes);
            throw new DeviceOutOfMemoryException(name + " - cannot allocate " + Bytes.format(bytes) + " for " + label + ": "
                    + e.getMessage() + " (allocated=" + Bytes.format(allocated.get()) + ", peak=" + Bytes.format(peak.get())
                    + ", limit=" + limitText() + ")", bytes, e);
        }
        DeviceBuffer buffer = new DeviceBuffer(this, address, bytes, label);
        outstanding.put(buffer, Boolean.TRUE);
        return buffer;
    }

    void free(DeviceBuffer buffer) {
        if (outstanding.remove(buffer) == null) {
            return; // already freed by close() of a leaking allocator
        }
        memory.free(buffer.rawAddress());
        release(buffer.bytes());
    }

    private void reserve(long bytes, String label) {
        assertOpen();
        long now = allocated.addAndGet(bytes);
        if (now > limit) {
            allocated.addAndGet(-bytes);
            throw new DeviceOutOfMemoryException(name + " - allocating " + Bytes.format(bytes) + " for " + label
                    + " would exceed the limit of " + limitText() + " (allocated=" + Bytes.format(now - bytes) + ", peak="
                    + Bytes.format(peak.get()) + "; " + memory.describe() + ")", bytes, null);
        }
        if (parent != null) {
            try {
                parent.reserve(bytes, label);
            } catch (DeviceOutOfMemoryException e) {
                allocated.addAndGet(-bytes);
                throw e;
            }
        }
        peak.accumulateAndGet(now, Math::max); // only once the whole chain granted it
    }

    private void release(long bytes) {
        allocated.addAndGet(-bytes);
        if (parent != null) {
            parent.release(bytes);
        }
    }

    private String limitText() {
        return limit == Long.MAX_VALUE ? "none" : Bytes.format(limit);
    }

    public String name() {
        return name;
    }

    public long allocatedBytes() {
        return allocated.get();
    }

    /** The most this allocator (with its children) has held at once. */
    public long peakBytes() {
        return peak.get();
    }

    public long limit() {
        return limit;
    }

    /** The memory this allocator draws from, for messages. */
    public DeviceMemory memory() {
        return memory;
    }

    public boolean isClosed() {
        return closed;
    }

    private void assertOpen() {
        if (closed) {
            throw new IllegalStateException("device allocator " + name + " is closed");
        }
    }

    /**
     * Closes this allocator. Children still open and buffers still allocated are a leak: they are closed and freed,
     * and then an {@link IllegalStateException} lists them ("Device memory was leaked by ...").
     */
    @Override
    public void close() {
        if (closed) {
            return;
        }
        List<String> leaks = new ArrayList<>();
        List<DeviceAllocator> openChildren;
        synchronized (children) {
            openChildren = new ArrayList<>(children);
        }
        for (DeviceAllocator child : openChildren) {
            try {
                child.close();
            } catch (IllegalStateException e) {
                leaks.add("child " + child.name + ": " + e.getMessage());
            }
            if (!child.closed) {
                leaks.add("child " + child.name + " still open");
            }
        }
        closed = true;
        List<DeviceBuffer> left;
        synchronized (outstanding) {
            left = new ArrayList<>(outstanding.keySet());
        }
        long leaked = 0;
        List<String> buffers = new ArrayList<>();
        for (DeviceBuffer b : left) {
            leaked += b.bytes();
            buffers.add(b.label() + " (" + Bytes.format(b.bytes()) + ")");
            if (outstanding.remove(b) != null) {
                b.markFreed();
                memory.free(b.rawAddress());
                release(b.bytes());
            }
        }
        if (parent != null) {
            parent.children.remove(this);
        }
        if (leaked != 0 || !leaks.isEmpty()) {
            StringBuilder msg = new StringBuilder("Device memory was leaked by " + name + ": " + Bytes.format(leaked)
                    + " still allocated in " + buffers.size() + " buffer(s) " + buffers);
            for (String l : leaks) {
                msg.append("; ").append(l);
            }
            throw new IllegalStateException(msg.toString());
        }
    }

    @Override
    public String toString() {
        return "DeviceAllocator[" + name + ", allocated=" + Bytes.format(allocated.get()) + ", peak=" + Bytes.format(peak.get())
                + ", limit=" + limitText() + "]";
    }
}
