package io.whittle.methods.wgsef;

import static org.bytedeco.openblas.global.openblas.cblas_sgemm;
import static org.bytedeco.openblas.global.openblas.cblas_sgemv;

import java.util.Random;
import org.bytedeco.javacpp.FloatPointer;
import org.bytedeco.javacpp.Pointer;

/** The few OpenBLAS calls the solvers make, on off-heap FloatPointers (no array copies across JNI). */
final class Blas {

    static final int ROW_MAJOR = 101;
    static final int NO_TRANS = 111;
    static final int TRANS = 112;
    static final int LOWER = 122;

    private Blas() {
    }

    /** A FloatPointer over {@code count} floats at {@code address}, which it does not own (e.g. a FloatTensor's). */
    static FloatPointer wrap(long nativeAddress, long count) {
        if (nativeAddress == 0) {
            throw new IllegalArgumentException("cannot wrap a null address");
        }
        // inside the subclass the simple name "address" is Pointer's field, hence the distinct parameter name
        Pointer p = new Pointer() {
            {
                this.address = nativeAddress;
                this.capacity = count;
                this.limit = count;
            }
        };
        FloatPointer f = new FloatPointer(p);
        f.capacity(count).limit(count);
        return f;
    }

    /** C (m x n) = alpha A (m x k) B (k x n) + beta C, all row-major. */
    static void gemm(FloatPointer a, FloatPointer b, FloatPointer c, int m, int n, int k, float alpha, float beta) {
        cblas_sgemm(ROW_MAJOR, NO_TRANS, NO_TRANS, m, n, k, alpha, a, k, b, n, beta, c, n);
    }

    /**
     * The largest eigenvalue of the symmetric positive semidefinite {@code scale * H + shift I} by power iteration
     * from a seeded random start; the Rayleigh quotient converges from below, so callers add a safety margin.
     */
    static double largestEigenvalue(FloatPointer h, int dim, float scale, double shift, int iterations, long seed) {
        try (FloatPointer x = new FloatPointer((long) dim); FloatPointer y = new FloatPointer((long) dim)) {
            float[] v = new float[dim];
            Random rnd = new Random(seed);
            double norm = 0;
            for (int i = 0; i < dim; i++) {
                v[i] = (float) (0.5 + rnd.nextDouble()); // positive start: never orthogonal to a PSD top eigenvector
                norm += (double) v[i] * v[i];
            }
            normalise(v, Math.sqrt(norm));
            double rayleigh = 0;
            float[] w = new float[dim];
            for (int it = 0; it < iterations; it++) {
                x.put(v, 0, dim);
                cblas_sgemv(ROW_MAJOR, NO_TRANS, dim, dim, scale, h, dim, x, 1, 0f, y, 1);
                y.get(w, 0, dim);
                double dot = 0;
                double nn = 0;
                for (int i = 0; i < dim; i++) {
                    dot += (double) w[i] * v[i];
                    nn += (double) w[i] * w[i];
                }
                rayleigh = dot;
                if (nn == 0) {
                    break; // H = 0
                }
                System.arraycopy(w, 0, v, 0, dim);
                normalise(v, Math.sqrt(nn));
            }
            return Math.max(0, rayleigh) + shift;
        }
    }

    private static void normalise(float[] v, double norm) {
        if (norm > 0) {
            for (int i = 0; i < v.length; i++) {
                v[i] = (float) (v[i] / norm);
            }
        }
    }
}
