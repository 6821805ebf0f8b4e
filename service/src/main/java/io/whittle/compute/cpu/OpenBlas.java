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

    /**
     * Products below this many multiply-adds run on one OpenBLAS thread: waking the other threads costs more than it
     * saves for the small GEMMs of MoE experts and short prefixes, and on a busy machine a thread that is not
     * scheduled stalls the whole call (measured: 5x slower sampling of a small model with 2 threads under load).
     */
    static final long PARALLEL_MIN_MACS = 1L << 25;

    private static volatile int ceiling = defaultThreads();
    private static volatile int current = -1;

    static void sgemm(boolean transA, boolean transB, int m, int n, int k, float alpha, FloatPointer a, int lda,
                      FloatPointer b, int ldb, float beta, FloatPointer c, int ldc) {
        int want = (long) m * n * k >= PARALLEL_MIN_MACS ? ceiling : 1;
        if (want != current) {
            // process-wide setting: concurrent callers may see each other's choice, which changes speed, not results
            openblas.blas_set_num_threads(want);
            current = want;
        }
        openblas.cblas_sgemm(ROW_MAJOR, transA ? TRANS : NO_TRANS, transB ? TRANS : NO_TRANS, m, n, k, alpha, a, lda, b, ldb,
                beta, c, ldc);
    }

    /** The most threads a large product may use (the {@code OPENBLAS_NUM_THREADS} environment variable, else all cores). */
    private static int defaultThreads() {
        String env = System.getenv("OPENBLAS_NUM_THREADS");
        try {
            if (env != null && Integer.parseInt(env.trim()) > 0) {
                return Integer.parseInt(env.trim());
            }
        } catch (NumberFormatException ignored) {
            // fall through to the core count
        }
        return Runtime.getRuntime().availableProcessors();
    }

    /** Sets the most OpenBLAS threads a large product may use, process-wide (benchmarks). */
    static void setThreads(int n) {
        ceiling = Math.max(1, n);
        current = -1;
    }

    static int threads() {
        return ceiling;
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
