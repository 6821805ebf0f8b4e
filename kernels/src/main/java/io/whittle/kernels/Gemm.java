package io.whittle.kernels;

import java.util.Locale;

/**
 * Row-major matrix multiply on fp32 device matrices, {@code C[m, n] = alpha * op(A) * op(B) + beta * C}, on one
 * stream. With {@code beta == 0} C is not read.
 *
 * <p>Two precisions: {@link Precision#FP32} (exact fp32 products and sums, the CUDA backend's default, matching
 * the CPU backend to rounding) and {@link Precision#BF16} (operands rounded to bf16, fp32 accumulation, on tensor
 * cores). Two implementations: cuBLAS ({@code cublasGemmEx}, compute type 32F) where libcublas.so.12 loads, and
 * Whittle's kernels otherwise ({@code gemm.cu}: SIMT fp32, mma.sync bf16). {@link #implementation()} says which
 * runs; {@code whittle.cuda.blas=kernels} (or {@code WHITTLE_CUDA_BLAS}) forces ours.
 */
public final class Gemm implements AutoCloseable {

    /** Operand precision; accumulation is fp32 in both. */
    public enum Precision {
        FP32, BF16
    }

    private static final int BF16_K_ALIGN = 32;

    private final CudaStream stream;
    private final Cublas cublas;
    private final String cublasUnavailable;
    private final Kernel[] f32;
    private final Kernel bf16;
    private final Kernel convert;

    Gemm(CudaStream stream) {
        this.stream = stream;
        CudaDevice d = stream.device();
        f32 = new Kernel[] {d.kernel("gemm.cu", "gemm_f32_nn"), d.kernel("gemm.cu", "gemm_f32_nt"), d.kernel("gemm.cu", "gemm_f32_tn"),
                d.kernel("gemm.cu", "gemm_f32_tt")};
        bf16 = d.properties().ccMajor() >= 8 ? d.kernel("gemm.cu", "gemm_bf16_tn") : null;
        convert = d.kernel("convert.cu", "f32_to_bf16_2d");
        String forced = System.getProperty("whittle.cuda.blas", System.getenv("WHITTLE_CUDA_BLAS"));
        Cublas c = null;
        String reason = null;
        if (forced != null && forced.trim().equalsIgnoreCase("kernels")) {
            reason = "disabled by whittle.cuda.blas=kernels";
        } else {
            try {
                c = Cublas.create(stream);
            } catch (LinkageError | RuntimeException e) {
                reason = "libcublas.so.12 not usable: " + ModuleLoader.firstLine(e);
            }
        }
        cublas = c;
        cublasUnavailable = reason;
    }

    public boolean usesCublas() {
        return cublas != null;
    }

    /** What runs: {@code cuBLAS 12.6.1} or {@code whittle kernels (...)} with the reason cuBLAS is not used. */
    public String implementation() {
        if (cublas != null) {
            return "cuBLAS " + cublas.version() + " (cublasGemmEx, compute 32F)";
        }
        return "whittle kernels (gemm.cu: SIMT fp32" + (bf16 != null ? ", mma.sync bf16" : "") + "; " + cublasUnavailable + ")";
    }

    /** Whether {@link Precision#BF16} is available (tensor cores with bf16: sm_80+, or cuBLAS). */
    public boolean supports(Precision precision) {
        return precision == Precision.FP32 || cublas != null || bf16 != null;
    }

    /**
     * {@code C = alpha * op(A) * op(B) + beta * C}; A is {@code [m, k]} ({@code [k, m]} when transA) with row stride
     * lda, B is {@code [k, n]} ({@code [n, k]} when transB) with row stride ldb, C {@code [m, n]} with row stride ldc.
     * Addresses are device addresses of fp32 data. BF16 needs scratch for the rounded operands, from the stream's
     * allocator.
     */
    public void gemm(Precision precision, boolean transA, boolean transB, int m, int n, int k, float alpha, long a, long lda, long b,
                     long ldb, float beta, long c, long ldc) {
        if (m < 0 || n < 0 || k < 0 || lda < (transA ? m : k) || ldb < (transB ? k : n) || ldc < n) {
            throw new IllegalArgumentException(String.format(Locale.ROOT,
                    "gemm: invalid shape m=%d n=%d k=%d transA=%s transB=%s lda=%d ldb=%d ldc=%d", m, n, k, transA, transB, lda, ldb, ldc));
        }
        if (m == 0 || n == 0) {
            return;
        }
        if (precision == Precision.BF16 && k > 0) {
            if (!supports(Precision.BF16)) {
                throw new IllegalStateException("bf16 GEMM needs tensor cores with bf16 (sm_80 or newer) or cuBLAS; device is "
                        + stream.properties().arch());
            }
            gemmBf16(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
            return;
        }
        if (cublas != null && k > 0) {
            // row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T on the same memory
            cublas.gemm(transB ? Cublas.OP_T : Cublas.OP_N, transA ? Cublas.OP_T : Cublas.OP_N, n, m, k, alpha, b, Cublas.R_32F, toInt(ldb),
                    a, Cublas.R_32F, toInt(lda), beta, c, toInt(ldc));
            return;
        }
        Kernel kernel = f32[(transA ? 2 : 0) + (transB ? 1 : 0)];
        stream.launch(kernel, Dim3.of(ceil(n, 128), ceil(m, 128)), Dim3.of(256), 0,
                KernelArgs.of().i32(m).i32(n).i32(k).f32(alpha).ptr(a).i64(lda).ptr(b).i64(ldb).f32(beta).ptr(c).i64(ldc));
    }

    private void gemmBf16(boolean transA, boolean transB, int m, int n, int k, float alpha, long a, long lda, long b, long ldb, float beta,
                          long c, long ldc) {
        int kp = ceil(k, BF16_K_ALIGN) * BF16_K_ALIGN;
        try (DeviceBuffer a16 = stream.allocator().allocate(2L * m * kp, "gemm bf16 A [" + m + ", " + kp + "]");
             DeviceBuffer b16 = stream.allocator().allocate(2L * n * kp, "gemm bf16 B [" + n + ", " + kp + "]")) {
            // A' = op(A) as [m, kp]; B' = op(B)^T as [n, kp]: the layout of gemm_bf16_tn and of cuBLAS "TN"
            toBf16(a, lda, transA ? k : m, transA ? m : k, transA, a16.address(), kp);
            toBf16(b, ldb, transB ? n : k, transB ? k : n, !transB, b16.address(), kp);
            if (cublas != null) {
                cublas.gemm(Cublas.OP_T, Cublas.OP_N, n, m, kp, alpha, b16.address(), Cublas.R_16BF, kp, a16.address(), Cublas.R_16BF, kp,
                        beta, c, toInt(ldc));
            } else {
                stream.launch(bf16, Dim3.of(ceil(n, 128), ceil(m, 128)), Dim3.of(256), 0, KernelArgs.of().i32(m).i32(n).i32(kp).f32(alpha)
                        .ptr(a16.address()).i64(kp).ptr(b16.address()).i64(kp).f32(beta).ptr(c).i64(ldc));
            }
        }
    }

    /** Rounds an fp32 matrix (or its transpose) to bf16 rows of {@code dstLd} elements, zero-padded. */
    void toBf16(long src, long srcLd, int srcRows, int srcCols, boolean transpose, long dst, int dstLd) {
        int outRows = transpose ? srcCols : srcRows;
        stream.launch(convert, Dim3.of(ceil(dstLd, 32), ceil(outRows, 32)), Dim3.of(32, 8), 0,
                KernelArgs.of().ptr(src).i64(srcLd).i32(srcRows).i32(srcCols).i32(transpose ? 1 : 0).ptr(dst).i64(dstLd));
    }

    private static int ceil(long a, int b) {
        return Math.toIntExact((a + b - 1) / b);
    }

    private static int toInt(long v) {
        return Math.toIntExact(v);
    }

    @Override
    public void close() {
        if (cublas != null) {
            cublas.close();
        }
    }
}
