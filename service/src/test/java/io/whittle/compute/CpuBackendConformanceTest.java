package io.whittle.compute;

import io.whittle.compute.cpu.CpuBackend;
import io.whittle.tensor.HostAllocator;

/** The conformance suite on the CPU backend itself: always runs, so the suite's own logic is checked in CI. */
class CpuBackendConformanceTest extends BackendConformanceTest {

    @Override
    protected Backend newBackend(HostAllocator host) {
        return new CpuBackend(host);
    }
}
