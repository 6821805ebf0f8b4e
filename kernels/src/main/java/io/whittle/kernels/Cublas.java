package io.whittle.kernels;

import jcuda.Pointer;
import jcuda.jcublas.JCublas2;
import jcuda.jcublas.cublasHandle;
import jcuda.runtime.cudaStream_t;

/**
 * cuBLAS through JCublas2 (needs libcublas.so.12), bound to one stream. Calls {@code cublasGemmEx_new}: JCuda's
 * {@code cublasGemmEx} is a compatibility wrapper that reads the compute type as a legacy cudaDataType and returns
 * NOT_SUPPORTED for CUBLAS_COMPUTE_32F without throwing.
 */
final class Cublas implements AutoCloseable {

    static final int OP_N = 0;
    static final int OP_T = 1;
    static final int R_32F = 0;
    static final int R_16BF = 14;
    static final int COMPUTE_32F = 68;
    static final int GEMM_DEFAULT = -1;

    private final cublasHandle handle;
    private final String version;

    private Cublas(cublasHandle handle, String version) {
        this.handle = handle;
        this.version = version;
    }

    /** Creates a handle on the stream; throws {@link LinkageError} when libcublas.so.12 is missing. */
    static Cublas create(CudaStream stream) {
        JCublas2.setExceptionsEnabled(false);
        cublasHandle h = new cublasHandle();
        check(JCublas2.cublasCreate(h), "cublasCreate");
        try {
            check(JCublas2.cublasSetStream(h, new cudaStream_t(stream.handle())), "cublasSetStream");
            int[] v = {0};
            check(JCublas2.cublasGetVersion(h, v), "cublasGetVersion");
            String version = (v[0] / 10000) + "." + (v[0] / 100 % 100) + "." + (v[0] % 100);
            return new Cublas(h, version);
        } catch (RuntimeException e) {
            JCublas2.cublasDestroy(h);
            throw e;
        }
    }

    static void check(int status, String call) {
        if (status != 0) {
            throw new CudaException(call + " failed: cublasStatus " + status, call, status);
        }
    }

    String version() {
        return version;
    }

    /** Column-major cublasGemmEx with fp32 scalars, fp32 output and fp32 compute. */
    void gemm(int opA, int opB, int m, int n, int k, float alpha, long a, int typeA, int lda, long b, int typeB, int ldb, float beta,
              long c, int ldc) {
        int status = JCublas2.cublasGemmEx_new(handle, opA, opB, m, n, k, Pointer.to(new float[] {alpha}), Driver.device(a), typeA, lda,
                Driver.device(b), typeB, ldb, Pointer.to(new float[] {beta}), Driver.device(c), R_32F, ldc, COMPUTE_32F, GEMM_DEFAULT);
        if (status != 0) {
            throw new CudaException("cublasGemmEx(opA=" + opA + ", opB=" + opB + ", m=" + m + ", n=" + n + ", k=" + k + ", typeA=" + typeA
                    + ", lda=" + lda + ", typeB=" + typeB + ", ldb=" + ldb + ", ldc=" + ldc + ") failed: cublasStatus " + status,
                    "cublasGemmEx", status);
        }
    }

    @Override
    public void close() {
        JCublas2.cublasDestroy(handle);
    }
}
