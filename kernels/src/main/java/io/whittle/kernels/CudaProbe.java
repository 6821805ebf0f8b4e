package io.whittle.kernels;

import jcuda.driver.CUresult;
import jcuda.driver.JCudaDriver;

/**
 * Finds out, once and without throwing, whether a CUDA driver and device are usable. JCuda signals a missing
 * {@code libcuda.so.1} with {@link UnsatisfiedLinkError} on first touch and {@link NoClassDefFoundError} after,
 * so both are caught as {@link LinkageError}; the CPU path must never be taken down by them.
 */
public final class CudaProbe {

    /** Outcome of the probe: {@code usable} with a device count, or not usable with the reason. */
    public record Result(boolean usable, int deviceCount, String reason) {
    }

    private static volatile Result cached;

    private CudaProbe() {
    }

    public static Result probe() {
        Result result = cached;
        if (result == null) {
            synchronized (CudaProbe.class) {
                result = cached;
                if (result == null) {
                    result = doProbe();
                    cached = result;
                }
            }
        }
        return result;
    }

    private static Result doProbe() {
        try {
            JCudaDriver.setExceptionsEnabled(false);
            int rc = JCudaDriver.cuInit(0);
            if (rc != CUresult.CUDA_SUCCESS) {
                return new Result(false, 0, "cuInit failed: " + CUresult.stringFor(rc) + " (" + rc + ")");
            }
            int[] count = {0};
            rc = JCudaDriver.cuDeviceGetCount(count);
            if (rc != CUresult.CUDA_SUCCESS) {
                return new Result(false, 0, "cuDeviceGetCount failed: " + CUresult.stringFor(rc) + " (" + rc + ")");
            }
            return count[0] > 0 ? new Result(true, count[0], "ok") : new Result(false, 0, "no CUDA devices visible");
        } catch (LinkageError e) {
            return new Result(false, 0, "JCuda natives or libcuda.so.1 not loadable: " + firstLine(e.getMessage()));
        }
    }

    private static String firstLine(String message) {
        if (message == null) {
            return "(no message)";
        }
        int nl = message.indexOf('\n');
        return nl < 0 ? message : message.substring(0, nl);
    }
}
