package io.whittle.compute.cpu;

import io.whittle.compute.Backend;
import io.whittle.compute.BackendProvider;
import io.whittle.compute.DeviceInfo;

/** Always usable: the CPU is the fallback when no GPU is. */
public final class CpuBackendProvider implements BackendProvider {

    @Override
    public String name() {
        return "cpu";
    }

    @Override
    public int rank() {
        return 100;
    }

    @Override
    public DeviceInfo probe() {
        try {
            OpenBlas.load();
            return CpuBackend.describe();
        } catch (IllegalStateException e) {
            return new DeviceInfo("cpu", "cpu", System.getProperty("os.arch"), null, Runtime.getRuntime().maxMemory(),
                    Runtime.getRuntime().availableProcessors(), false, false, false, null, e.getMessage());
        }
    }

    /** Host memory held by tensors (the root host allocator), the part of memory Whittle's own work uses. */
    @Override
    public long memoryUsedBytes() {
        return io.whittle.tensor.HostAllocator.root().allocatedBytes();
    }

    @Override
    public Backend create(io.whittle.tensor.HostAllocator hostAllocator) {
        return new CpuBackend(hostAllocator);
    }
}
