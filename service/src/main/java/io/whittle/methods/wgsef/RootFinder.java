package io.whittle.methods.wgsef;

/**
 * The three exact root finders of wgsef.md §2.4 for
 * <pre>  h(tau) = sum_j clip(alpha_j tau - beta_j, 0, 1) - k,   alpha_j &gt; 0, beta_j &gt;= 0,  1 &lt;= k &lt; n</pre>
 * (alpha_j = b_j, beta_j = lambda d_j for the prox; beta_j = 0 for the value). h is continuous, nondecreasing and
 * piecewise linear with breakpoints lo_j = beta_j / alpha_j and hi_j = (1 + beta_j) / alpha_j.
 *
 * <p>Each finder returns some root tau*; {@link Wgsef} then classifies the groups at tau* against their
 * breakpoints (SAT: tau* &gt;= hi_j, ZERO: tau* &lt;= lo_j, MID otherwise) and finishes in closed form,
 * tau = (k - |SAT| + sum_MID beta) / sum_MID alpha, or, when MID is empty (h flat at 0, the gap case), with the
 * midpoint of the flat interval. The three finders therefore give the same u up to rounding, which the tests check.
 * <ul>
 *   <li>{@link #RANDOM_PIVOT} (default): §2.4(b), expected O(n): pick a random breakpoint inside the bracket
 *       (L, R), evaluate h there, shrink the bracket and settle the pieces that became constant or linear on it.
 *       The pivot generator is seeded, so results are reproducible.</li>
 *   <li>{@link #SORT_SCAN}: §2.4(a), O(n log n): sort the 2n breakpoint events and scan slope/offset prefix sums.</li>
 *   <li>{@link #BISECTION}: §2.4(c): bisection on [min lo, max hi] until the bracket stops shrinking.</li>
 * </ul>
 */
public enum RootFinder {
    RANDOM_PIVOT, SORT_SCAN, BISECTION;

    /** A root of h over {@code ws.alpha/ws.beta[0..n)}, with {@code ws.lo/ws.hi} filled by the caller. */
    double root(int n, int k, ProxWorkspace ws) {
        return switch (this) {
            case RANDOM_PIVOT -> randomPivot(n, k, ws);
            case SORT_SCAN -> sortScan(n, k, ws);
            case BISECTION -> bisection(n, k, ws);
        };
    }

    private static double clip01(double v) {
        return v <= 0 ? 0 : (v >= 1 ? 1 : v);
    }

    private static double randomPivot(int n, int k, ProxWorkspace ws) {
        double[] alpha = ws.alpha;
        double[] beta = ws.beta;
        double[] lo = ws.lo;
        double[] hi = ws.hi;
        int[] act = ws.active;
        for (int j = 0; j < n; j++) {
            act[j] = j;
        }
        int na = n;
        double left = Double.NEGATIVE_INFINITY;
        double right = Double.POSITIVE_INFINITY;
        double settledSlope = 0;  // A: sum of alpha over pieces linear on (L, R)
        double settledOffset = 0; // B: sum of beta over the same pieces
        int settledOnes = 0;      // C: pieces equal to 1 on (L, R)
        while (na > 0) {
            int candidates = 0;
            for (int i = 0; i < na; i++) {
                int j = act[i];
                if (lo[j] > left && lo[j] < right) {
                    candidates++;
                }
                if (hi[j] > left && hi[j] < right) {
                    candidates++;
                }
            }
            if (candidates == 0) {
                break; // cannot happen: an unsettled piece always has a breakpoint inside (L, R)
            }
            int pick = ws.nextInt(candidates);
            double p = Double.NaN;
            for (int i = 0; i < na && Double.isNaN(p); i++) {
                int j = act[i];
                if (lo[j] > left && lo[j] < right && pick-- == 0) {
                    p = lo[j];
                } else if (hi[j] > left && hi[j] < right && pick-- == 0) {
                    p = hi[j];
                }
            }
            double v = settledSlope * p - settledOffset + settledOnes - k;
            for (int i = 0; i < na; i++) {
                int j = act[i];
                v += clip01(alpha[j] * p - beta[j]);
            }
            if (v == 0) {
                return p;
            }
            if (v > 0) {
                right = p;
            } else {
                left = p;
            }
            int keep = 0;
            for (int i = 0; i < na; i++) {
                int j = act[i];
                if (lo[j] >= right) {
                    continue; // zero on (L, R)
                }
                if (hi[j] <= left) {
                    settledOnes++;
                    continue;
                }
                if (lo[j] <= left && hi[j] >= right) {
                    settledSlope += alpha[j];
                    settledOffset += beta[j];
                    continue;
                }
                act[keep++] = j;
            }
            na = keep;
        }
        if (settledSlope == 0) {
            // h is flat (= 0) on (L, R); both ends are finite because h(-inf) = -k < 0 < n - k = h(+inf)
            return 0.5 * (left + right);
        }
        double tau = (k - settledOnes + settledOffset) / settledSlope;
        return Math.min(Math.max(tau, left), right);
    }

    private static double sortScan(int n, int k, ProxWorkspace ws) {
        double[] pos = ws.values;
        int[] idx = ws.index;
        for (int j = 0; j < n; j++) {
            pos[j] = ws.lo[j];
            pos[n + j] = ws.hi[j];
            idx[j] = j;
            idx[n + j] = n + j;
        }
        int events = 2 * n;
        IndexSort.sort(idx, events, pos, false, ws.sortTmp);
        double slope = 0;
        double offset = 0;
        int mid = 0;
        int sat = 0;
        for (int e = 0; e < events; e++) {
            int ev = idx[e];
            int j = ev < n ? ev : ev - n;
            if (ev < n) { // u_j starts rising
                slope += ws.alpha[j];
                offset -= ws.beta[j];
                mid++;
            } else {      // u_j reaches 1
                slope -= ws.alpha[j];
                offset += ws.beta[j] + 1;
                mid--;
                sat++;
            }
            if (mid == 0) {
                // no piece is rising: the slope and offset are exact integers; drop accumulated rounding
                slope = 0;
                offset = sat;
            }
            double here = pos[ev];
            double next = e + 1 < events ? pos[idx[e + 1]] : Double.POSITIVE_INFINITY;
            // h is continuous, so the partial sums at a shared position still give h(here) exactly (up to rounding)
            if (mid == 0) {
                if (sat >= k) {
                    return here; // flat piece at 0 (or the right end of the last rising piece)
                }
            } else if (slope > 0) {
                double tau = (k - offset) / slope;
                if (tau <= next) {
                    return Math.max(tau, here);
                }
            }
        }
        return pos[idx[events - 1]];
    }

    private static double bisection(int n, int k, ProxWorkspace ws) {
        double a = Double.POSITIVE_INFINITY;
        double b = Double.NEGATIVE_INFINITY;
        for (int j = 0; j < n; j++) {
            a = Math.min(a, ws.lo[j]);
            b = Math.max(b, ws.hi[j]);
        }
        for (int round = 0; round < 2000; round++) {
            double m = 0.5 * (a + b);
            if (!(m > a && m < b)) {
                break; // the bracket is down to adjacent doubles
            }
            double v = -k;
            for (int j = 0; j < n; j++) {
                v += clip01(ws.alpha[j] * m - ws.beta[j]);
            }
            if (v == 0) {
                return m;
            }
            if (v < 0) {
                a = m;
            } else {
                b = m;
            }
        }
        return 0.5 * (a + b);
    }
}
