package io.whittle.compute.cuda;

import io.whittle.compute.Backend;
import io.whittle.compute.BackendProvider;
import io.whittle.compute.DeviceInfo;
import io.whittle.kernels.CudaDevice;
import io.whittle.kernels.CudaProbe;
import io.whittle.kernels.CudaStream;
import io.whittle.kernels.DeviceProperties;
import io.whittle.kernels.Gemm;
import io.whittle.tensor.HostAllocator;

/**
 * The CUDA backend on GPU 0, ranked before the CPU so that {@code auto} takes a usable GPU. The probe runs once per
 * process and never throws: it checks the driver and device, loads every kernel module (prebuilt cubins or NVRTC)
 * and tries cuBLAS, and whatever fails becomes the reason in {@link DeviceInfo} (shown by the devices endpoint and
 * health), so the service keeps serving on CPU.
 */
public final class CudaBackendProvider implements BackendProvider {

    /** Oldest architecture the kernels are written for (independent thread scheduling, __syncwarp semantics). */
    static final int MIN_COMPUTE_MAJOR = 7;

    private static volatile DeviceInfo probed;

    @Override
    public String name() {
        return "cuda";
    }

    @Override
    public int rank() {
        return 10;
    }

    @Override
    public DeviceInfo probe() {
        DeviceInfo info = probed;
        if (info == null) {
            synchronized (CudaBackendProvider.class) {
                info = probed;
                if (info == null) {
                    info = doProbe();
                    probed = info;
                }
            }
        }
        return info;
    }

    private static DeviceInfo doProbe() {
        CudaProbe.Result driver = CudaProbe.probe();
        if (!driver.usable()) {
            return unusable("cuda", null, null, 0, driver.reason());
        }
        DeviceProperties p = null;
        try {
            CudaDevice device = CudaDevice.open(0);
            p = device.properties();
            if (p.ccMajor() < MIN_COMPUTE_MAJOR) {
                return unusable(p.id(), p.name(), p.computeCapability(), p.totalMemoryBytes(), "compute capability " + p.computeCapability()
                        + " is older than the " + MIN_COMPUTE_MAJOR + ".0 Whittle's kernels need");
            }
            device.loadAllModules();
            try (CudaStream stream = device.newStream("probe", Long.MAX_VALUE)) {
                Gemm gemm = stream.gemm();
                return new DeviceInfo(p.id(), "cuda", p.name(), p.computeCapability(), p.totalMemoryBytes(), p.multiprocessors(), true, true,
                        gemm.usesCublas(), gemm.implementation(), "ok");
            }
        } catch (RuntimeException | LinkageError e) {
            String reason = e.getMessage() == null ? e.getClass().getSimpleName() : e.getMessage();
            return p == null ? unusable("cuda:0", null, null, 0, reason)
                    : unusable(p.id(), p.name(), p.computeCapability(), p.totalMemoryBytes(), reason);
        }
    }

    private static DeviceInfo unusable(String id, String name, String cc, long memory, String reason) {
        return new DeviceInfo(id, "cuda", name, cc, memory, 0, false, false, false, null, reason);
    }

    @Override
    public Backend create(HostAllocator hostAllocator) {
        return new CudaBackend(CudaDevice.open(0), hostAllocator, CudaBackend.Options.fromEnvironment());
    }
}
