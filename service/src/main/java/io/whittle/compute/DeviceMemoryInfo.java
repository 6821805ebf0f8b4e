package io.whittle.compute;

/**
 * Implemented by backends with bounded device memory (a GPU): what a new allocation may still use, for the
 * pipeline's memory plan ({@link io.whittle.forward.MemoryPlanner}).
 */
public interface DeviceMemoryInfo {

    /** Bytes this backend may still allocate: free device memory plus what it holds for reuse, within its limit. */
    long availableBytes();
}
