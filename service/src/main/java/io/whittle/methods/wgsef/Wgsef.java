package io.whittle.methods.wgsef;

import java.util.Arrays;
import java.util.List;

/**
 * The WGSEF operator of wgsef.md §1.3 and §2: for a partition of the parameters into groups x_j with norms
 * a_j = ||x_j||, weights d_j > 0 and level k,
 * <pre>
 *   S_{k,d}(x)  = S_k^SEF(b),  b_j = sqrt(d_j) a_j                 (value, §1.2/§1.3)
 *   S*_{k,d}(y) = 1/2 (sum of the k largest ||y_j||^2 / d_j)       (conjugate)
 *   prox_{lambda S}(x)_j = c_j x_j,  c_j = u_j / (u_j + lambda d_j) (prox, §2.2)
 * </pre>
 * with u_j = clip(tau b_j - lambda d_j, 0, 1) and tau the root of sum_j u_j = k over the non-zero groups.
 *
 * <p>The prox follows PROX_WGSEF of §2.2 case by case: lambda = 0 is the identity; when at most k groups are
 * non-zero (which includes k >= m) every group is shrunk by 1/(1 + lambda d_j) (CASE A); otherwise (CASE B) the
 * root is found with a {@link RootFinder} (seeded random pivot by default, §2.4(b)) and finished in closed form,
 * handling the flat-root gap case (MID empty) explicitly. Zero groups never enter the breakpoints (§6). Norms, the
 * root and the scales are FP64; the float data are touched twice, once to reduce the group norms and once to scale.
 *
 * <p>The array methods work on one problem given its group norms; the {@link GroupPartition} methods apply the
 * operator to whole matrices. N:M partitions are many small problems with one weight; they are solved block by block
 * with {@link SmallProblemProx}, an exact sorted scan that gives the same u as the finders (tested) without their
 * per-call set-up; the {@code finder} argument applies to problems of more than 16 groups.
 *
 * <p>u values within a few ulps of 0 or 1 are snapped to exactly 0 or 1 (see {@code clipSnapped}): at a tie on a
 * breakpoint their sign is rounding noise, and an exact 0 keeps the non-zero count and the gap report independent of
 * the finder.
 */
public final class Wgsef {

    /** Which branch of PROX_WGSEF produced a result. */
    public enum ProxCase {
        /** lambda = 0: the prox is the identity. */
        IDENTITY,
        /** CASE A: at most k non-zero groups, every group shrunk by 1/(1 + lambda d_j). */
        RIDGE,
        /** CASE B: more than k non-zero groups, the root-finding case. */
        ENVELOPE
    }

    /**
     * The prox of one problem: per group the scale c_j (z_j = c_j x_j) and u_j, the root tau (0 outside CASE B), the
     * branch taken, and the number of non-zero output groups. {@link #gapHeld()} is the exactly-k gap condition of
     * §2.3(4): the output has at most k non-zero groups.
     */
    public record ProxScales(double[] scale, double[] u, double tau, ProxCase proxCase, int nonzero, int level) {
        public boolean gapHeld() {
            return nonzero <= level;
        }
    }

    /** Whole-partition prox outcome: non-zero output groups over all problems, and whether every problem's gap held. */
    public record Summary(int nonzeroGroups, boolean gapHeld, int problems) {
    }

    private Wgsef() {
    }

    // ------------------------------------------------------------------------------------------------ one problem

    /** S_{k,d}(x) from the group norms a_j (d = null means d = 1); equal to the SEF of b_j = sqrt(d_j) a_j. */
    public static double value(double[] a, double[] d, int k) {
        checkProblem(a, d, k);
        int m = a.length;
        ProxWorkspace ws = new ProxWorkspace().ensure(m);
        int n = 0;
        double ridge = 0;
        for (int j = 0; j < m; j++) {
            if (a[j] > 0) {
                double b = Math.sqrt(weight(d, j)) * a[j];
                ws.alpha[n] = b;
                ws.beta[n] = 0;
                ws.lo[n] = 0;
                ws.hi[n] = 1 / b;
                ridge += 0.5 * b * b;
                n++;
            }
        }
        if (n <= k) {
            return ridge; // group-k-sparse: S = 1/2 sum d_j a_j^2
        }
        ws.seed(0x5EF);
        double tau = finish(n, k, RootFinder.RANDOM_PIVOT.root(n, k, ws), ws, null);
        double satSq = 0;
        double midSum = 0;
        int sat = 0;
        for (int j = 0; j < n; j++) {
            double b = ws.alpha[j];
            if (tau >= ws.hi[j]) {
                satSq += b * b;
                sat++;
            } else {
                midSum += b;
            }
        }
        if (sat >= k) {
            return 0.5 * satSq; // only reachable through rounding: the rest then carries no weight
        }
        // S = 1/2 sum_{i<=N} b_[i]^2 + (sum_{i>N} b_[i])^2 / (2 (k - N))   (§1.2, N = |SAT|)
        return 0.5 * satSq + midSum * midSum / (2.0 * (k - sat));
    }

    /** The SEF S_k(x) of a plain vector (singleton groups, d = 1). */
    public static double sef(double[] x, int k) {
        double[] a = new double[x.length];
        for (int i = 0; i < x.length; i++) {
            a[i] = Math.abs(x[i]);
        }
        return value(a, null, k);
    }

    /** The weighted ridge 1/2 sum_j d_j a_j^2, the lower bound of S_{k,d}. */
    public static double ridge(double[] a, double[] d) {
        double s = 0;
        for (int j = 0; j < a.length; j++) {
            s += 0.5 * weight(d, j) * a[j] * a[j];
        }
        return s;
    }

    /** The envelope gap S_{k,d} - 1/2 sum d_j a_j^2 (>= 0, zero exactly on group-k-sparse points; §1.3). */
    public static double envelopeGap(double[] a, double[] d, int k) {
        return Math.max(0, value(a, d, k) - ridge(a, d));
    }

    /** S*_{k,d}(y) from the group norms of y: half the sum of the k largest ||y_j||^2 / d_j. */
    public static double conjugate(double[] yNorms, double[] d, int k) {
        checkProblem(yNorms, d, k);
        double[] q = new double[yNorms.length];
        for (int j = 0; j < q.length; j++) {
            q[j] = yNorms[j] * yNorms[j] / weight(d, j);
        }
        Arrays.sort(q);
        double s = 0;
        for (int i = q.length - 1; i >= Math.max(0, q.length - k); i--) {
            s += q[i];
        }
        return 0.5 * s;
    }

    /**
     * The prox scales of one problem (PROX_WGSEF, §2.2). {@code seed} drives the random-pivot finder only.
     *
     * @param a      group norms, finite and >= 0
     * @param d      group weights > 0, or null for d = 1
     * @param k      level, >= 1 (clamped to the group count)
     * @param lambda >= 0
     */
    public static ProxScales proxScales(double[] a, double[] d, int k, double lambda, RootFinder finder, long seed) {
        checkProblem(a, d, k);
        checkLambda(lambda);
        int m = a.length;
        double[] scale = new double[m];
        double[] u = new double[m];
        ProxWorkspace ws = new ProxWorkspace().ensure(m);
        ws.seed(seed);
        int[] nonzero = new int[1];
        double[] tau = new double[1];
        ProxCase c = proxKernel(a, d, 0, m, Math.min(k, m), lambda, finder, ws, scale, u, nonzero, tau);
        return new ProxScales(scale, u, tau[0], c, nonzero[0], k);
    }

    /**
     * The gradient of S_{k,d} where it exists, as one factor per group: grad_{x_j} S = g_j x_j with
     * g_j = d_j / u_j, u_j = min(1, tau b_j) (§1.3). Zero groups get 0, the minimum-norm subgradient there.
     */
    public static double[] gradientScales(double[] a, double[] d, int k) {
        checkProblem(a, d, k);
        int m = a.length;
        double[] g = new double[m];
        ProxWorkspace ws = new ProxWorkspace().ensure(m);
        int[] map = new int[m];
        int n = 0;
        for (int j = 0; j < m; j++) {
            if (a[j] > 0) {
                double b = Math.sqrt(weight(d, j)) * a[j];
                ws.alpha[n] = b;
                ws.beta[n] = 0;
                ws.lo[n] = 0;
                ws.hi[n] = 1 / b;
                map[n++] = j;
            }
        }
        if (n <= k) {
            for (int i = 0; i < n; i++) {
                g[map[i]] = weight(d, map[i]);
            }
            return g;
        }
        ws.seed(0x5EF);
        double tau = finish(n, k, RootFinder.RANDOM_PIVOT.root(n, k, ws), ws, null);
        for (int i = 0; i < n; i++) {
            double uj = Math.min(1, tau * ws.alpha[i]);
            g[map[i]] = weight(d, map[i]) / uj;
        }
        return g;
    }

    /**
     * The exactly-k gap condition of §2.3(4), checked directly on the breakpoints: there is a set T of k groups with
     * max_{j in T} (1 + lambda d_j) / b_j &lt;= min_{j not in T} lambda d_j / b_j (zero groups count as +inf on the
     * right). It holds trivially with at most k non-zero groups, and never with lambda = 0 and more than k. For
     * d = 1 it reads a_[k] >= (1 + 1/lambda) a_[k+1].
     */
    public static boolean gapCondition(double[] a, double[] d, int k, double lambda) {
        checkProblem(a, d, k);
        checkLambda(lambda);
        int m = a.length;
        double[] hi = new double[m];
        double[] lo = new double[m];
        int[] idx = new int[m];
        int n = 0;
        for (int j = 0; j < m; j++) {
            if (a[j] > 0) {
                double b = Math.sqrt(weight(d, j)) * a[j];
                hi[n] = (1 + lambda * weight(d, j)) / b;
                lo[n] = lambda * weight(d, j) / b;
                idx[n] = n;
                n++;
            }
        }
        if (n <= k) {
            return true;
        }
        if (lambda == 0) {
            return false;
        }
        // if any T works, the k smallest hi do: j in T and i outside give hi_j <= lo_i < hi_i
        IndexSort.sort(idx, n, hi, false, new int[n]);
        double maxHiT = hi[idx[k - 1]];
        double minLoRest = Double.POSITIVE_INFINITY;
        for (int i = k; i < n; i++) {
            minLoRest = Math.min(minLoRest, lo[idx[i]]);
        }
        return maxHiT <= minLoRest;
    }

    // ----------------------------------------------------------------------------------------------- partitions

    /**
     * prox_{lambda S_{k,d}} of the data of {@code partition}, in place, with the same weight d for every group
     * (see {@link GroupWeights}) and level k per problem.
     */
    public static Summary prox(GroupPartition partition, double d, int k, double lambda, RootFinder finder, long seed,
                               List<float[]> data) {
        return ExactKProjection.apply(partition, d, k, lambda, finder, seed, data, false, null);
    }

    /** S_{k,d} summed over the problems of {@code partition}. */
    public static double value(GroupPartition partition, double d, int k, List<float[]> data) {
        checkWeight(d);
        partition.checkData(data);
        if (!partition.isBlockwise()) {
            double[] a = partition.groupNorms(data);
            return value(a, constant(a.length, d), k);
        }
        int ps = partition.problemSize();
        float[] x = data.get(0);
        double[] a = new double[ps];
        double[] dd = constant(ps, d);
        double s = 0;
        for (int p = 0; p < partition.problems(); p++) {
            for (int j = 0; j < ps; j++) {
                a[j] = Math.abs((double) x[p * ps + j]);
            }
            s += value(a, dd, k);
        }
        return s;
    }

    // ------------------------------------------------------------------------------------------------- internals

    /**
     * PROX_WGSEF on groups [off, off + m) of {@code a} (group weights {@code d[off + j]}, or 1 when d is null), writing
     * the scale and u of group j to {@code scale[j]}, {@code u[j]}. Returns the branch; {@code nonzeroOut[0]} gets
     * the number of non-zero output groups and {@code tauOut[0]} the root. Allocation-free given a sized workspace.
     */
    static ProxCase proxKernel(double[] a, double[] d, int off, int m, int k, double lambda, RootFinder finder,
                               ProxWorkspace ws, double[] scale, double[] u, int[] nonzeroOut, double[] tauOut) {
        tauOut[0] = 0;
        int positive = 0;
        for (int j = 0; j < m; j++) {
            double aj = a[off + j];
            if (!(aj >= 0) || Double.isInfinite(aj)) {
                throw new IllegalArgumentException("group " + (off + j) + " has a non-finite norm " + aj);
            }
            if (aj > 0) {
                positive++;
            }
        }
        if (lambda == 0) {
            for (int j = 0; j < m; j++) {
                scale[j] = 1;
                u[j] = a[off + j] > 0 ? 1 : 0;
            }
            nonzeroOut[0] = positive;
            return ProxCase.IDENTITY;
        }
        if (positive <= k) {
            for (int j = 0; j < m; j++) {
                scale[j] = 1 / (1 + lambda * weight(d, off + j));
                u[j] = a[off + j] > 0 ? 1 : 0;
            }
            nonzeroOut[0] = positive;
            return ProxCase.RIDGE;
        }
        ws.ensure(m);
        int[] map = ws.groupMap; // position in the compacted breakpoint arrays -> group
        int n = 0;
        for (int j = 0; j < m; j++) {
            double aj = a[off + j];
            if (aj > 0) {
                double dj = weight(d, off + j);
                double b = Math.sqrt(dj) * aj;
                double beta = lambda * dj;
                ws.alpha[n] = b;
                ws.beta[n] = beta;
                ws.lo[n] = beta / b;
                ws.hi[n] = (1 + beta) / b;
                map[n] = j;
                n++;
            }
        }
        double tau = finish(n, k, finder.root(n, k, ws), ws, ws.values);
        tauOut[0] = tau;
        Arrays.fill(scale, 0, m, 0);
        Arrays.fill(u, 0, m, 0);
        int nonzero = 0;
        for (int i = 0; i < n; i++) {
            int j = map[i];
            double uj = ws.values[i];
            u[j] = uj;
            if (uj > 0) {
                scale[j] = uj / (uj + ws.beta[i]);
                nonzero++;
            }
        }
        nonzeroOut[0] = nonzero;
        return ProxCase.ENVELOPE;
    }

    /**
     * The closed-form finish of §2.4: classify the groups at tau* against their breakpoints, then
     * tau = (k - |SAT| + sum_MID beta) / sum_MID alpha, or the midpoint of the flat interval
     * [max_SAT hi, min_ZERO lo] when MID is empty. Writes u_j to {@code uOut[j]} when given; returns tau.
     */
    static double finish(int n, int k, double tauStar, ProxWorkspace ws, double[] uOut) {
        int sat = 0;
        int mid = 0;
        double sumAlpha = 0;
        double sumBeta = 0;
        double satMaxHi = Double.NEGATIVE_INFINITY;
        double zeroMinLo = Double.POSITIVE_INFINITY;
        for (int j = 0; j < n; j++) {
            if (tauStar >= ws.hi[j]) {
                sat++;
                satMaxHi = Math.max(satMaxHi, ws.hi[j]);
            } else if (tauStar <= ws.lo[j]) {
                zeroMinLo = Math.min(zeroMinLo, ws.lo[j]);
            } else {
                mid++;
                sumAlpha += ws.alpha[j];
                sumBeta += ws.beta[j];
            }
        }
        double tau;
        if (mid > 0) {
            tau = (k - sat + sumBeta) / sumAlpha;
        } else if (Double.isInfinite(satMaxHi)) {
            tau = zeroMinLo;
        } else if (Double.isInfinite(zeroMinLo)) {
            tau = satMaxHi;
        } else {
            tau = 0.5 * (satMaxHi + zeroMinLo); // flat root: any point of the interval gives the same u
        }
        if (uOut != null) {
            for (int j = 0; j < n; j++) {
                // compare with the breakpoints first so that a tau landing on one gives an exact 0 or 1
                uOut[j] = tau >= ws.hi[j] ? 1 : (tau <= ws.lo[j] ? 0 : clipSnapped(ws.alpha[j] * tau - ws.beta[j], ws.beta[j]));
            }
        }
        return tau;
    }

    /**
     * clip(v, 0, 1) for v = alpha tau - beta, with values within the rounding error of that difference (a few ulps of
     * 1 + beta) taken as exactly 0 or 1: at a tie on a breakpoint the sign of such a v is noise, and an exact 0 keeps
     * the group at zero (so the non-zero count, and the gap report, do not depend on rounding).
     */
    static double clipSnapped(double v, double beta) {
        double tol = 4 * Math.ulp(1 + beta);
        if (v <= tol) {
            return 0;
        }
        return v >= 1 - tol ? 1 : v;
    }

    static double weight(double[] d, int j) {
        return d == null ? 1.0 : d[j];
    }

    static double[] constant(int m, double d) {
        double[] out = new double[m];
        Arrays.fill(out, d);
        return out;
    }

    static void checkProblem(double[] a, double[] d, int k) {
        if (a == null) {
            throw new IllegalArgumentException("group norms are required");
        }
        if (k < 1) {
            throw new IllegalArgumentException("k: level must be >= 1, got " + k);
        }
        if (d != null) {
            if (d.length != a.length) {
                throw new IllegalArgumentException("weights: " + d.length + " weights for " + a.length + " groups");
            }
            for (int j = 0; j < d.length; j++) {
                if (!(d[j] > 0) || Double.isInfinite(d[j])) {
                    throw new IllegalArgumentException("weights: d_" + j + " must be finite and > 0, got " + d[j]);
                }
            }
        }
        for (int j = 0; j < a.length; j++) {
            if (!(a[j] >= 0) || Double.isInfinite(a[j])) {
                throw new IllegalArgumentException("group " + j + " has a non-finite or negative norm " + a[j]);
            }
        }
    }

    static void checkLambda(double lambda) {
        if (!(lambda >= 0) || Double.isInfinite(lambda)) {
            throw new IllegalArgumentException("lambda must be finite and >= 0, got " + lambda);
        }
    }

    static void checkWeight(double d) {
        if (!(d > 0) || Double.isInfinite(d)) {
            throw new IllegalArgumentException("weights: d must be finite and > 0, got " + d);
        }
    }
}
