package io.whittle.methods.wgsef;

/**
 * Exact PROX_WGSEF for one small problem whose groups share one weight d (the N:M blocks, at most
 * {@link #MAX_GROUPS} groups). With a common weight, u_j = clip(tau' a_j - lambda d, 0, 1) (tau' = tau sqrt(d)) and
 * both breakpoint sequences lo_j = lambda d / a_j and hi_j = (1 + lambda d) / a_j follow the order of a_j, so after an
 * insertion sort of the few norms the sort-and-scan of wgsef.md §2.4(a) becomes a merge of two already sorted event
 * lists: the state is (s, t) with SAT = the s largest, MID = ranks s+1..t, and h(q) = s - k - (t - s) lambda d + q A on
 * the current piece (A = sum of the MID norms). The first piece with h >= 0 at its right end holds the root; a piece
 * with MID empty and s = k is the flat (gap) case. Same result as the three {@link RootFinder}s (the tests check
 * this), without their per-call set-up, which dominates for blocks of four.
 */
final class SmallProblemProx {

    static final int MAX_GROUPS = 16;

    private SmallProblemProx() {
    }

    /**
     * Scales c_j of groups [0, m) with norms {@code a} (finite, >= 0), common weight product {@code lam} = lambda d > 0
     * and level k; {@code order} is scratch of at least m ints. Returns the number of non-zero output groups.
     */
    static int solve(double[] a, int m, int k, double lam, double[] scale, int[] order, double[] inverse) {
        int p = 0;
        for (int j = 0; j < m; j++) {
            if (a[j] > 0) {
                order[p++] = j;
            } else {
                scale[j] = 0;
            }
        }
        if (p <= k) { // CASE A
            double c = 1 / (1 + lam);
            for (int j = 0; j < m; j++) {
                scale[j] = c;
            }
            return p;
        }
        for (int i = 0; i < p; i++) {
            inverse[order[i]] = 1 / a[order[i]]; // breakpoints as products: lo = lam / a, hi = (1 + lam) / a
        }
        for (int i = 1; i < p; i++) { // descending by norm
            int v = order[i];
            int j = i - 1;
            while (j >= 0 && a[order[j]] < a[v]) {
                order[j + 1] = order[j];
                j--;
            }
            order[j + 1] = v;
        }
        int s = 0;
        int t = 0;
        double sumMid = 0;
        double tau = Double.NaN;
        while (true) {
            double qLo = t < p ? lam * inverse[order[t]] : Double.POSITIVE_INFINITY;
            double qHi = s < t ? (1 + lam) * inverse[order[s]] : Double.POSITIVE_INFINITY;
            double q = Math.min(qLo, qHi);
            if (t == s) {
                if (s >= k) {
                    break; // flat piece at 0: SAT = the k largest, the rest zero
                }
            } else if (s - k - (t - s) * lam + q * sumMid >= 0) {
                tau = (k - s + (t - s) * lam) / sumMid;
                break;
            }
            if (qLo <= qHi) {
                sumMid += a[order[t++]];
            } else {
                sumMid -= a[order[s++]];
                if (s == t) {
                    sumMid = 0; // MID emptied: drop the rounding left in the running sum
                }
            }
        }
        int nonzero = 0;
        for (int r = 0; r < p; r++) {
            int j = order[r];
            double u;
            if (r < s) {
                u = 1;
            } else if (r < t) {
                u = Wgsef.clipSnapped(tau * a[j] - lam, lam);
            } else {
                u = 0;
            }
            scale[j] = u > 0 ? u / (u + lam) : 0;
            if (u > 0) {
                nonzero++;
            }
        }
        return nonzero;
    }
}
