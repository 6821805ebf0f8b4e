package io.whittle.kernels;

import java.util.Locale;

/**
 * What the driver says about a GPU, read once when the device is opened. These choose launch configurations and
 * tile sizes (SM count, shared memory), feed the memory planner (total memory) and give nominal ceilings
 * ({@link #nominalBandwidthBytesPerSecond()}), which benchmarks report beside the measured ones.
 *
 * @param memoryClockKHz     peak memory clock in kHz (CU_DEVICE_ATTRIBUTE_MEMORY_CLOCK_RATE)
 * @param memoryBusWidthBits global memory bus width in bits
 * @param driverVersion      e.g. 13000 for CUDA 13.0
 */
public record DeviceProperties(int ordinal, String name, int ccMajor, int ccMinor, int multiprocessors, long totalMemoryBytes,
                               int l2CacheBytes, int memoryClockKHz, int memoryBusWidthBits, int sharedMemoryPerBlock,
                               int sharedMemoryPerBlockOptin, int maxThreadsPerBlock, int warpSize, int driverVersion) {

    /** {@code sm_90} for compute capability 9.0: the architecture kernels are compiled for. */
    public String arch() {
        return "sm_" + ccMajor + ccMinor;
    }

    /** {@code 9.0}. */
    public String computeCapability() {
        return ccMajor + "." + ccMinor;
    }

    /** {@code cuda:0}. */
    public String id() {
        return "cuda:" + ordinal;
    }

    /** 2 x memory clock x bus width: the datasheet-style peak (HBM parts may differ; measure the real one). */
    public double nominalBandwidthBytesPerSecond() {
        return 2.0 * memoryClockKHz * 1e3 * (memoryBusWidthBits / 8.0);
    }

    /** The driver version as {@code 13.0}. */
    public String driverVersionText() {
        return (driverVersion / 1000) + "." + (driverVersion % 1000) / 10;
    }

    public String describe() {
        return String.format(Locale.ROOT, "%s %s (sm_%d%d, %d SMs, %s, L2 %s, driver %s)", id(), name, ccMajor, ccMinor,
                multiprocessors, Bytes.format(totalMemoryBytes), Bytes.format(l2CacheBytes), driverVersionText());
    }
}
