package io.whittle.kernels;

import jcuda.driver.CUfunction;
import jcuda.driver.CUfunction_attribute;
import jcuda.driver.JCudaDriver;

/** A loaded kernel entry point ({@code module/function}), launched through {@link CudaStream#launch}. */
public final class Kernel {

    private final String module;
    private final String name;
    private final CUfunction function;
    private volatile int dynamicSmemLimit;

    Kernel(String module, String name, CUfunction function, int defaultSmem) {
        this.module = module;
        this.name = name;
        this.function = function;
        this.dynamicSmemLimit = defaultSmem;
    }

    public String module() {
        return module;
    }

    public String name() {
        return name;
    }

    CUfunction function() {
        return function;
    }

    /** Raises the kernel's dynamic shared memory limit (needed above 48 KiB) once. */
    void ensureDynamicSmem(int bytes) {
        if (bytes > dynamicSmemLimit) {
            synchronized (this) {
                if (bytes > dynamicSmemLimit) {
                    Driver.check(JCudaDriver.cuFuncSetAttribute(function,
                            CUfunction_attribute.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, bytes), "cuFuncSetAttribute",
                            () -> "kernel " + this + ", " + bytes + " bytes of dynamic shared memory");
                    dynamicSmemLimit = bytes;
                }
            }
        }
    }

    @Override
    public String toString() {
        return module + "/" + name;
    }
}
