package io.whittle.compute.cpu;

import io.whittle.tensor.FloatTensor;
import org.bytedeco.javacpp.FloatPointer;
import org.bytedeco.openblas.global.openblas;

/**
 * The only class that calls OpenBLAS. Tensors live in off-heap memory that JavaCPP did not allocate, so each call
 * wraps their raw addresses in non-owning pointers (no copy, no deallocation).
 */
final class OpenBlas {

    static final int ROW_MAJOR = openblas.CblasRowMajor;
    static final int NO_TRANS = openblas.CblasNoTrans;
    static final int TRANS = openblas.CblasTrans;

    private static volatile String config;

    private OpenBlas() {
    }

    /** A pointer at element {@code offset} of the tensor that owns nothing. */
    static FloatPointer at(FloatTensor t, long offset) {
        return new AddressPointer(t.address() + 4 * offset, t.numel() - offset);
    }

    static void sgemm(boolean transA, boolean transB, int m, int n, int k, float alpha, FloatPointer a, int lda,
                      FloatPointer b, int ldb, float beta, FloatPointer c, int ldc) {
        openblas.cblas_sgemm(ROW_MAJOR, transA ? TRANS : NO_TRANS, transB ? TRANS : NO_TRANS, m, n, k, alpha, a, lda, b, ldb,
                beta, c, ldc);
    }

    /** Sets OpenBLAS's thread count for the whole process (benchmarks only: it changes every caller). */
    static void setThreads(int n) {
        openblas.blas_set_num_threads(n);
    }

    static int threads() {
        int n = openblas.blas_get_num_threads();
        return n > 0 ? n : Runtime.getRuntime().availableProcessors();
    }

    /** OpenBLAS build and CPU kernel, e.g. "OpenBLAS 0.3.31 DYNAMIC_ARCH ... Cooperlake". */
    static String config() {
        String c = config;
        if (c == null) {
            try {
                c = org.bytedeco.openblas.global.openblas_full.openblas_get_config().getString();
            } catch (LinkageError | RuntimeException e) {
                c = "OpenBLAS (config unavailable: " + e.getMessage() + ")";
            }
            config = c;
        }
        return c;
    }

    /** Loads the native library eagerly so a broken installation fails at start-up with a clear message. */
    static void load() {
        try {
            org.bytedeco.javacpp.Loader.load(openblas.class);
        } catch (LinkageError e) {
            throw new IllegalStateException("OpenBLAS natives could not be loaded (org.bytedeco:openblas for linux-x86_64 "
                    + "must be on the classpath): " + e.getMessage(), e);
        }
    }

    private static final class AddressPointer extends FloatPointer {
        AddressPointer(long address, long elements) {
            super((org.bytedeco.javacpp.Pointer) null);
            this.address = address;
            this.position = 0;
            this.limit = elements;
            this.capacity = elements;
        }
    }
}
