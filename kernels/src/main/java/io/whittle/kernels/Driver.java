package io.whittle.kernels;

import java.util.function.Supplier;
import jcuda.Pointer;
import jcuda.driver.CUcontext;
import jcuda.driver.CUdeviceptr;
import jcuda.driver.CUresult;
import jcuda.driver.JCudaDriver;

/**
 * Small helpers around JCuda's driver binding. JCuda's exception flags stay off (they are global, and its
 * exception drops the result code); every call's result goes through {@link #check}.
 */
final class Driver {

    private static final ThreadLocal<CUcontext> CURRENT = new ThreadLocal<>();

    private Driver() {
    }

    static String name(int rc) {
        try {
            return CUresult.stringFor(rc);
        } catch (RuntimeException e) {
            return "CUresult " + rc;
        }
    }

    /** Throws a {@link CudaException} naming the call, the code and the context when {@code rc} is not success. */
    static void check(int rc, String call, Supplier<String> context) {
        if (rc != CUresult.CUDA_SUCCESS) {
            String ctx = context == null ? null : context.get();
            throw new CudaException(call + " failed: " + name(rc) + " (" + rc + ")" + (ctx == null || ctx.isEmpty() ? "" : "; " + ctx),
                    call, rc);
        }
    }

    static void check(int rc, String call) {
        check(rc, call, null);
    }

    /** Makes {@code context} current on this thread (CUDA contexts are per thread); cheap when it already is. */
    static void makeCurrent(CUcontext context) {
        if (CURRENT.get() != context) {
            check(JCudaDriver.cuCtxSetCurrent(context), "cuCtxSetCurrent");
            CURRENT.set(context);
        }
    }

    /** A JCuda device pointer at a raw device address. */
    static CUdeviceptr device(long address) {
        return new CUdeviceptr().withByteOffset(address);
    }

    /** A JCuda host pointer at a raw host address (off-heap memory that Java owns, e.g. a FloatTensor). */
    static Pointer host(long address) {
        return new RawPointer(address);
    }

    /** A device pointer whose address JCuda fills in (cuMemAlloc) and that can say what it is. */
    static final class DevicePtr extends CUdeviceptr {
        long address() {
            return getNativePointer() + getByteOffset();
        }
    }

    /** JCuda reads a plain Pointer's native address; the constructor that sets it is protected. */
    private static final class RawPointer extends Pointer {
        RawPointer(long address) {
            super(address);
        }
    }
}
