package io.whittle.compute;

/**
 * A compute device as reports and the devices endpoint show it. For a GPU: name, compute capability, memory and
 * whether our kernels and cuBLAS loaded; {@code usable=false} with the reason when the backend cannot run.
 */
public record DeviceInfo(String id, String kind, String name, String computeCapability, long memoryBytes,
                         int threads, boolean usable, boolean kernelsLoaded, boolean blasLoaded, String blas,
                         String reason) {
}
