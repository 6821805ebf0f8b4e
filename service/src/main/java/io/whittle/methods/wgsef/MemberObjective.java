package io.whittle.methods.wgsef;

import org.bytedeco.javacpp.FloatPointer;

/**
 * The layer-wise reconstruction objective of one member matrix W (rows x cols) with its calibration statistic H
 * (wgsef.md §7): f(W') = 1/2 tr((W' - W) (H + delta I) (W' - W)^T), delta = damping x mean diag(H). Holds the
 * off-heap buffers for the product D H (one SGEMM, rows x cols x cols), W H (for the refit right-hand sides and the
 * trace), the Lipschitz constant lambda_max(H) + delta, and the weight omega = 1 / tr(W (H + delta I) W^T) that makes
 * members of different scale comparable (used by {@code mlp-channels}, harmless elsewhere).
 */
final class MemberObjective implements AutoCloseable {

    final GroupPartition.Member member;
    final int rows;
    final int cols;
    final float[] w;
    final Gram gram;
    final double delta;
    final double lipschitz;
    final double traceRaw;
    final double weight;
    final float[] wh;
    private final FloatPointer in;
    private final FloatPointer out;

    MemberObjective(GroupPartition.Member member, float[] w, Gram gram, double damping, int powerIterations, long seed) {
        this.member = member;
        this.rows = member.matrix().rows();
        this.cols = member.matrix().cols();
        this.w = w;
        this.gram = gram;
        double meanDiag = gram.meanDiagonal();
        // all-zero calibration data: damp against the identity so the objective is the plain Frobenius distance
        this.delta = damping * (meanDiag > 0 ? meanDiag : 1.0);
        long n = (long) rows * cols;
        this.in = new FloatPointer(n);
        this.out = new FloatPointer(n);
        try {
            this.lipschitz = Blas.largestEigenvalue(gram.sum(), cols, gram.scale(), delta, powerIterations, seed);
            this.wh = new float[rows * cols];
            timesH(w, wh);
            this.traceRaw = Math.max(0, dot(w, wh));
            double traceDamped = traceRaw + delta * dot(w, w);
            this.weight = traceDamped > 0 ? 1 / traceDamped : 1;
        } catch (RuntimeException e) {
            close();
            throw e;
        }
    }

    /** result = D H (raw H, no damping); {@code d} and {@code result} may be the same array. */
    void timesH(float[] d, float[] result) {
        in.put(d, 0, d.length);
        Blas.gemm(in, gram.sum(), out, rows, cols, cols, gram.scale(), 0f);
        out.get(result, 0, result.length);
    }

    /** The raw and damped traces tr(D H D^T), tr(D (H + delta I) D^T) of D = candidate - W, using {@code scratch}. */
    double[] traces(float[] candidate, float[] scratch) {
        for (int i = 0; i < scratch.length; i++) {
            scratch[i] = candidate[i] - w[i];
        }
        double dd = dot(scratch, scratch);
        float[] dh = new float[scratch.length];
        timesH(scratch, dh);
        double raw = Math.max(0, dot(scratch, dh));
        return new double[] {raw, raw + delta * dd};
    }

    /** ||X (W - W')^T|| / ||X W^T|| = sqrt(tr(D H D^T) / tr(W H W^T)); 0 when both vanish. */
    double relativeError(double rawTrace) {
        if (traceRaw > 0) {
            return Math.sqrt(rawTrace / traceRaw);
        }
        return rawTrace > 0 ? Double.POSITIVE_INFINITY : 0;
    }

    static double dot(float[] a, float[] b) {
        double s = 0;
        for (int i = 0; i < a.length; i++) {
            s += (double) a[i] * b[i];
        }
        return s;
    }

    @Override
    public void close() {
        in.close();
        out.close();
    }
}
