package io.whittle.kernels;

/**
 * A failed CUDA driver, NVRTC or cuBLAS call. The message names the call, the result code and its name, and the
 * state that explains it (device, kernel and launch shape, free/total memory), in the manner of HikariCP's
 * diagnostic messages; {@link #code()} keeps the numeric code, which JCuda's own exception drops.
 */
public class CudaException extends RuntimeException {

    /** Result codes after which the context is unusable: the process must restart to use the GPU again. */
    private static final int[] STICKY = {700, 701, 702, 714, 715, 716, 717, 718, 719};

    private final String call;
    private final int code;

    public CudaException(String message, String call, int code) {
        this(message, call, code, null);
    }

    public CudaException(String message, String call, int code, Throwable cause) {
        super(message, cause);
        this.call = call;
        this.code = code;
    }

    /** The API call that failed, e.g. {@code cuLaunchKernel}. */
    public String call() {
        return call;
    }

    /** The CUresult, nvrtcResult or cublasStatus value (0 when the failure is not a result code). */
    public int code() {
        return code;
    }

    /** True when the error leaves the CUDA context broken (illegal address, launch failure...). */
    public boolean isSticky() {
        for (int c : STICKY) {
            if (c == code) {
                return true;
            }
        }
        return false;
    }
}
