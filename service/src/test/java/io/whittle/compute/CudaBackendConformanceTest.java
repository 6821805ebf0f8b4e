package io.whittle.compute;

import io.whittle.compute.cuda.CudaBackend;
import io.whittle.compute.cuda.CudaBackendProvider;
import io.whittle.kernels.CudaDevice;
import io.whittle.tensor.HostAllocator;
import org.junit.jupiter.api.Assumptions;

/**
 * The conformance suite on the CUDA backend with exact fp32 matrix products. Skipped, with the probe's reason,
 * where no GPU is usable; runs on a GPU, and on the CPU emulator of the driver (kernels/emu/run-conformance.sh).
 */
class CudaBackendConformanceTest extends BackendConformanceTest {

    @Override
    protected void assumeAvailable() {
        DeviceInfo info = new CudaBackendProvider().probe();
        Assumptions.assumeTrue(info.usable(), () -> "CUDA backend not usable: " + info.reason());
    }

    @Override
    protected Backend newBackend(HostAllocator host) {
        return new CudaBackend(CudaDevice.open(0), host, CudaBackend.Options.defaults());
    }
}
