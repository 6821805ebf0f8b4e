package io.whittle.methods.camera.quant;

import io.whittle.tensor.FloatTensor;
import org.bytedeco.javacpp.FloatPointer;
import org.bytedeco.openblas.global.openblas;

/**
 * The few OpenBLAS calls quantization needs, on off-heap {@link FloatTensor} memory without copies. JavaCPP passes
 * a pointer's raw address to the native call, so a non-owning pointer onto the tensor's memory suffices; the
 * tensor must stay open for the duration of the (synchronous) call.
 */
final class NativeBlas {

    private NativeBlas() {
    }

    /** A non-owning pointer at element {@code offset} of {@code t}; it frees nothing. */
    private static final class View extends FloatPointer {
        View(FloatTensor t, long offset, long count) {
            super((org.bytedeco.javacpp.Pointer) null);
            if (offset < 0 || count < 0 || offset + count > t.numel()) {
                throw new IndexOutOfBoundsException("BLAS view [" + offset + ", " + (offset + count) + ") outside " + t.shape());
            }
            this.address = t.address() + 4L * offset;
            this.position = 0;
            this.limit = count;
            this.capacity = count;
        }
    }

    /**
     * {@code c[upper] += x^T x} for row-major {@code x [k, n]} and row-major {@code c [n, n]}; only the upper
     * triangle of {@code c} is referenced and updated.
     */
    static void syrkUpperAccumulate(FloatTensor x, int k, int n, FloatTensor c) {
        if (k == 0) {
            return;
        }
        openblas.cblas_ssyrk(openblas.CblasRowMajor, openblas.CblasUpper, openblas.CblasTrans, n, k, 1f,
                new View(x, 0, (long) k * n), n, 1f, new View(c, 0, (long) n * n), n);
    }

    /**
     * {@code C += alpha * A B} on row-major sub-matrices: A at {@code aOff} ({@code m x kk}, leading dimension
     * {@code lda}), B at {@code bOff} ({@code kk x nn}, {@code ldb}), C at {@code cOff} ({@code m x nn}, {@code ldc}).
     */
    static void gemmAccumulate(int m, int nn, int kk, float alpha,
                               FloatTensor a, long aOff, int lda,
                               FloatTensor b, long bOff, int ldb,
                               FloatTensor c, long cOff, int ldc) {
        if (m == 0 || nn == 0 || kk == 0) {
            return;
        }
        openblas.cblas_sgemm(openblas.CblasRowMajor, openblas.CblasNoTrans, openblas.CblasNoTrans, m, nn, kk, alpha,
                new View(a, aOff, (long) (m - 1) * lda + kk), lda,
                new View(b, bOff, (long) (kk - 1) * ldb + nn), ldb, 1f,
                new View(c, cOff, (long) (m - 1) * ldc + nn), ldc);
    }
}
