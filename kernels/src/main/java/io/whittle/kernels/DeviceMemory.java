package io.whittle.kernels;

/**
 * Where a {@link DeviceAllocator} gets its memory: the device (through a stream's caching layer) in production,
 * a host-side accounting fake in tests that run without a GPU.
 */
public interface DeviceMemory {

    /**
     * Device address of {@code bytes} fresh bytes (contents undefined, aligned to 256 bytes).
     *
     * @throws DeviceOutOfMemoryException when the device has not that much free
     */
    long allocate(long bytes);

    /** Returns memory from {@link #allocate}. */
    void free(long address);

    /** The memory's state for error messages, e.g. {@code device free=1.2 GiB / total=139.8 GiB}. */
    String describe();
}
