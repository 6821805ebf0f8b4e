package io.whittle.compute;

/**
 * A way to make a {@link Backend}, found through {@link java.util.ServiceLoader} (DJL's engine SPI pattern). A
 * provider probes without throwing: a missing native library is a reason in {@link #probe()}, never a crash.
 */
public interface BackendProvider {

    /** {@code cpu}, {@code cuda}. */
    String name();

    /** Lower ranks win in {@code auto} selection. */
    int rank();

    /** The device this provider would use, with {@code usable=false} and the reason when it cannot. */
    DeviceInfo probe();

    /**
     * Bytes of this device's memory in use now (for the device memory gauges), or -1 when the provider cannot
     * tell.
     */
    default long memoryUsedBytes() {
        return -1;
    }

    /**
     * Makes the backend; only called after a usable probe. Host memory the backend allocates (all of it, for the
     * CPU backend) comes from {@code hostAllocator}, so a job's peak covers it.
     */
    Backend create(io.whittle.tensor.HostAllocator hostAllocator);
}
