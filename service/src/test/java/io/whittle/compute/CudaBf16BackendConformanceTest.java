package io.whittle.compute;

import io.whittle.compute.cuda.CudaBackend;
import io.whittle.compute.cuda.CudaBackendProvider;
import io.whittle.kernels.CudaDevice;
import io.whittle.kernels.Gemm;
import io.whittle.tensor.HostAllocator;
import org.junit.jupiter.api.Assumptions;

/**
 * The conformance suite on the CUDA backend with bf16 matrix products (tensor cores, fp32 accumulation). Operands
 * rounded to bf16 (8 significant bits) give products with a relative error of a few 1e-3; the tolerance is 1e-2.
 */
class CudaBf16BackendConformanceTest extends BackendConformanceTest {

    @Override
    protected void assumeAvailable() {
        DeviceInfo info = new CudaBackendProvider().probe();
        Assumptions.assumeTrue(info.usable(), () -> "CUDA backend not usable: " + info.reason());
    }

    @Override
    protected Backend newBackend(HostAllocator host) {
        return new CudaBackend(CudaDevice.open(0), host, new CudaBackend.Options(Gemm.Precision.BF16, Long.MAX_VALUE));
    }

    @Override
    protected double matmulTolerance() {
        return 1e-2;
    }
}
