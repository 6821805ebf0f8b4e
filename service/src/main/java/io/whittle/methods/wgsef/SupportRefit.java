package io.whittle.methods.wgsef;

import static org.bytedeco.openblas.global.openblas.LAPACKE_dpotrf;
import static org.bytedeco.openblas.global.openblas.LAPACKE_dpotrs;

import java.util.BitSet;

/**
 * The least-squares debias on a fixed support (wgsef.md §7, step 3): for one member, minimise
 * 1/2 tr((W' - W)(H + delta I)(W' - W)^T) with W' zero outside the kept groups. The problem separates by rows, and
 * rows of one row-tile share their support, so:
 * <ul>
 *   <li>fully kept rows keep W (it is the unconstrained minimiser), fully removed rows are zero;</li>
 *   <li>each partially kept row-tile with kept columns T is refit exactly, W'_T = (W H~)_{:,T} (H~_{T,T})^{-1},
 *       by one FP64 Cholesky (LAPACK dpotrf/dpotrs) shared by the tile's rows. For {@code columns}, heads of
 *       o_proj and the down projection of {@code mlp-channels} that is a single factorisation;</li>
 *   <li>when the factorisations would cost more than both a flop budget and the alternative below (N:M on large
 *       matrices gives every row its own support), the same problem is solved by masked accelerated gradient
 *       descent (FISTA with projection onto the support), started from W restricted to the support.</li>
 * </ul>
 */
final class SupportRefit {

    private SupportRefit() {
    }

    /**
     * The refit of one member on the kept groups: exact when its estimated cost is within {@code exactFlopBudget} or
     * below that of {@code maskedIterations} masked iterations (2 rows cols^2 flops each), masked otherwise.
     */
    static float[] refit(MemberObjective obj, BitSet kept, double exactFlopBudget, int maskedIterations) {
        double exact = exactFlops(obj, kept);
        double masked = maskedIterations * 2.0 * obj.rows * (double) obj.cols * obj.cols;
        return exact <= Math.max(exactFlopBudget, masked) ? exact(obj, kept) : masked(obj, kept, maskedIterations);
    }

    /** Estimated flops of the exact refit: a Cholesky and the triangular solves per partially kept row-tile. */
    static double exactFlops(MemberObjective obj, BitSet kept) {
        GroupPartition.Member mem = obj.member;
        int tpr = mem.tilesPerRow();
        double flops = 0;
        for (int rt = 0; rt < obj.rows / mem.tileRows(); rt++) {
            int s = 0;
            for (int t = 0; t < tpr; t++) {
                if (kept.get(rt * tpr + t)) {
                    s += mem.tileCols();
                }
            }
            if (s > 0 && s < obj.cols) {
                flops += (double) s * s * s / 3 + 2.0 * s * s * mem.tileRows();
            }
        }
        return flops;
    }

    /** The exact refit: W rows where fully kept, zero where fully removed, one Cholesky per partial row-tile. */
    static float[] exact(MemberObjective obj, BitSet kept) {
        GroupPartition.Member mem = obj.member;
        int rows = obj.rows;
        int cols = obj.cols;
        int tr = mem.tileRows();
        int tc = mem.tileCols();
        int tpr = mem.tilesPerRow();
        int rowTiles = rows / tr;
        float[] out = new float[rows * cols];
        for (int rt = 0; rt < rowTiles; rt++) {
            int s = 0;
            for (int t = 0; t < tpr; t++) {
                if (kept.get(rt * tpr + t)) {
                    s += tc;
                }
            }
            if (s == cols) {
                System.arraycopy(obj.w, rt * tr * cols, out, rt * tr * cols, tr * cols);
            } else if (s > 0) {
                exactTile(obj, kept, rt, s, out);
            }
        }
        return out;
    }

    private static void exactTile(MemberObjective obj, BitSet kept, int rt, int s, float[] out) {
        GroupPartition.Member mem = obj.member;
        int cols = obj.cols;
        int tr = mem.tileRows();
        int tc = mem.tileCols();
        int tpr = mem.tilesPerRow();
        int[] support = new int[s];
        int n = 0;
        for (int t = 0; t < tpr; t++) {
            if (kept.get(rt * tpr + t)) {
                for (int c = t * tc; c < (t + 1) * tc; c++) {
                    support[n++] = c;
                }
            }
        }
        double[] rhs = new double[s * tr];
        double jitter = 0;
        double meanDiag = obj.gram.meanDiagonal();
        double base = meanDiag > 0 ? meanDiag : 1;
        for (int attempt = 0; attempt < 8; attempt++) {
            double[] h = new double[s * s];
            for (int a = 0; a < s; a++) {
                for (int b = 0; b <= a; b++) {
                    h[a * s + b] = obj.gram.get(support[a], support[b]);
                }
                h[a * s + a] += obj.delta + jitter;
            }
            if (LAPACKE_dpotrf(Blas.ROW_MAJOR, (byte) 'L', s, h, s) == 0) {
                // right-hand side (W (H + delta' I))_{:,T}; the jitter acts as extra damping towards W, so directions
                // where H is singular stay at W instead of collapsing to zero
                double damp = obj.delta + jitter;
                for (int r = 0; r < tr; r++) {
                    int row = rt * tr + r;
                    for (int a = 0; a < s; a++) {
                        int idx = row * cols + support[a];
                        rhs[a * tr + r] = obj.wh[idx] + damp * obj.w[idx];
                    }
                }
                double[] x = rhs;
                if (LAPACKE_dpotrs(Blas.ROW_MAJOR, (byte) 'L', s, tr, h, s, x, tr) == 0 && allFinite(x)) {
                    for (int r = 0; r < tr; r++) {
                        int row = rt * tr + r;
                        for (int a = 0; a < s; a++) {
                            out[row * cols + support[a]] = (float) x[a * tr + r];
                        }
                    }
                    return;
                }
            }
            // singular H~_{T,T} (no damping and dead inputs): damp a little towards W and retry
            jitter = jitter == 0 ? 1e-8 * base : jitter * 100;
        }
        for (int r = 0; r < tr; r++) { // give up refitting: keep W on the support
            int row = rt * tr + r;
            for (int a = 0; a < s; a++) {
                out[row * cols + support[a]] = obj.w[row * cols + support[a]];
            }
        }
    }

    private static boolean allFinite(double[] x) {
        for (double v : x) {
            if (!Double.isFinite(v)) {
                return false;
            }
        }
        return true;
    }

    /** The masked-FISTA refit, started from W restricted to the support. */
    static float[] masked(MemberObjective obj, BitSet kept, int iterations) {
        GroupPartition.Member mem = obj.member;
        int rows = obj.rows;
        int cols = obj.cols;
        boolean[] mask = new boolean[rows * cols];
        for (int r = 0; r < rows; r++) {
            for (int c = 0; c < cols; c++) {
                mask[r * cols + c] = kept.get(mem.groupOf(r, c));
            }
        }
        float[] x = new float[rows * cols];
        for (int i = 0; i < x.length; i++) {
            x[i] = mask[i] ? obj.w[i] : 0f;
        }
        float[] y = x.clone();
        float[] s = new float[x.length];
        float[] nx = new float[x.length];
        double step = 1 / obj.lipschitz;
        if (!(step > 0) || Double.isInfinite(step)) {
            return x;
        }
        double t = 1;
        for (int it = 0; it < iterations; it++) {
            for (int i = 0; i < s.length; i++) {
                s[i] = y[i] - obj.w[i];
            }
            obj.timesH(s, s);
            double restart = 0;
            double diff2 = 0;
            double norm2 = 0;
            for (int i = 0; i < nx.length; i++) {
                nx[i] = mask[i] ? (float) (y[i] - step * (s[i] + obj.delta * (y[i] - obj.w[i]))) : 0f;
                double d = (double) nx[i] - x[i];
                restart += ((double) y[i] - nx[i]) * d;
                diff2 += d * d;
                norm2 += (double) nx[i] * nx[i];
            }
            if (restart > 0) {
                t = 1;
            }
            double tNext = 0.5 * (1 + Math.sqrt(1 + 4 * t * t));
            double beta = (t - 1) / tNext;
            t = tNext;
            for (int i = 0; i < nx.length; i++) {
                y[i] = (float) (nx[i] + beta * ((double) nx[i] - x[i]));
            }
            float[] swap = x;
            x = nx;
            nx = swap;
            if (diff2 <= 1e-14 * norm2) {
                break;
            }
        }
        return x;
    }
}
