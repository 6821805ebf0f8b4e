package io.whittle.methods.wgsef;

import static io.whittle.methods.wgsef.GroupInstance.axpy;
import static io.whittle.methods.wgsef.GroupInstance.dot;
import static io.whittle.methods.wgsef.GroupInstance.norm;
import static io.whittle.methods.wgsef.GroupInstance.relErr;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.api.Test;

/** The property tests of wgsef.md §5.2 on seeded random instances (item 11, the CUDA parity, has no CUDA path here). */
class WgsefPropertiesTest {

    private static final int INSTANCES = 1500;

    private static double logUniform(Random rnd, double lo, double hi) {
        return Math.exp(Math.log(lo) + rnd.nextDouble() * (Math.log(hi) - Math.log(lo)));
    }

    private static int nonzeroGroups(double[][] z) {
        int n = 0;
        for (double a : GroupInstance.norms(z)) {
            if (a > 0) {
                n++;
            }
        }
        return n;
    }

    /** §5.2(1): S(z) + S*(y) = <z, y> with y = (x - z) / lambda, iff z is the prox. */
    @Test
    void optimalityCertificateHoldsOnRandomInstances() {
        Random rnd = new Random(11);
        double worst = 0;
        for (int t = 0; t < INSTANCES; t++) {
            GroupInstance in = GroupInstance.random(rnd, 2 + rnd.nextInt(40), 5, rnd.nextBoolean(), rnd.nextBoolean());
            int k = 1 + rnd.nextInt(in.m());
            double lambda = logUniform(rnd, 1e-3, 1e3);
            double[][] z = in.prox(k, lambda, RootFinder.RANDOM_PIVOT);
            double[][] y = axpy(-1, z, in.x);
            for (double[] yj : y) {
                for (int i = 0; i < yj.length; i++) {
                    yj[i] /= lambda;
                }
            }
            double sz = Wgsef.value(GroupInstance.norms(z), in.d, k);
            double sy = Wgsef.conjugate(GroupInstance.norms(y), in.d, k);
            double zy = dot(z, y);
            double scale = Math.max(Math.abs(zy), Math.max(sz, sy));
            if (scale > 0) {
                worst = Math.max(worst, Math.abs(sz + sy - zy) / scale);
            }
        }
        assertTrue(worst < 1e-12, "worst relative certificate gap " + worst);
    }

    @Test
    void certificateRejectsANonProx() {
        // the certificate is sharp: a slightly perturbed point fails it (Fenchel-Young is strict off the prox)
        Random rnd = new Random(12);
        GroupInstance in = GroupInstance.random(rnd, 12, 3, true, false);
        double lambda = 0.7;
        int k = 4;
        double[][] z = in.prox(k, lambda, RootFinder.RANDOM_PIVOT);
        z[0][0] += 0.05; // any move away from the prox
        double[][] y = axpy(-1, z, in.x);
        for (double[] yj : y) {
            for (int i = 0; i < yj.length; i++) {
                yj[i] /= lambda;
            }
        }
        double gap = Wgsef.value(GroupInstance.norms(z), in.d, k) + Wgsef.conjugate(GroupInstance.norms(y), in.d, k) - dot(z, y);
        assertTrue(gap > 1e-6, "Fenchel-Young gap " + gap);
    }

    /** §5.2(2) and (3): sum u = k, the non-zero count bounds, 0 <= c_j <= 1/(1 + lambda d_j), order preservation. */
    @Test
    void proxStructure() {
        Random rnd = new Random(13);
        for (int t = 0; t < INSTANCES; t++) {
            boolean weighted = rnd.nextBoolean();
            GroupInstance in = GroupInstance.random(rnd, 2 + rnd.nextInt(30), 4, weighted, rnd.nextBoolean());
            int k = 1 + rnd.nextInt(in.m());
            double lambda = logUniform(rnd, 1e-3, 1e3);
            double[] a = in.norms();
            Wgsef.ProxScales s = Wgsef.proxScales(a, in.d, k, lambda, RootFinder.RANDOM_PIVOT, t);
            int nnzIn = (int) Arrays.stream(a).filter(v -> v > 0).count();
            if (s.proxCase() == Wgsef.ProxCase.ENVELOPE) {
                assertEquals(k, Arrays.stream(s.u()).sum(), 1e-9);
            }
            assertTrue(s.nonzero() >= Math.min(k, nnzIn) && s.nonzero() <= nnzIn);
            assertEquals(s.nonzero(), nonzeroGroups(in.scaled(s.scale())));
            for (int j = 0; j < a.length; j++) {
                assertTrue(s.scale()[j] >= 0 && s.scale()[j] <= 1 / (1 + lambda * in.d[j]) * (1 + 1e-12));
            }
            if (!weighted) {
                for (int i = 0; i < a.length; i++) {
                    for (int j = 0; j < a.length; j++) {
                        if (a[i] > a[j]) {
                            assertTrue(s.scale()[i] * a[i] >= s.scale()[j] * a[j] * (1 - 1e-12));
                        }
                    }
                }
            }
        }
    }

    /** §5.2(4): exactly k non-zero groups iff the gap condition; for d = 1, a_[k] >= (1 + 1/lambda) a_[k+1]. */
    @Test
    void exactlyKIffGapCondition() {
        Random rnd = new Random(14);
        int held = 0;
        int checked = 0;
        for (int t = 0; t < INSTANCES; t++) {
            boolean weighted = rnd.nextBoolean();
            GroupInstance in = GroupInstance.random(rnd, 3 + rnd.nextInt(20), 3, weighted, false);
            int k = 1 + rnd.nextInt(in.m() - 1);
            double lambda = logUniform(rnd, 1e-2, 1e3);
            double[] a = in.norms();
            Wgsef.ProxScales s = Wgsef.proxScales(a, in.d, k, lambda, RootFinder.RANDOM_PIVOT, t);
            boolean gap = Wgsef.gapCondition(a, in.d, k, lambda);
            if (!weighted) {
                double[] sorted = a.clone();
                Arrays.sort(sorted);
                double ak = sorted[a.length - k];
                double ak1 = sorted[a.length - k - 1];
                double ratio = ak / ak1;
                if (Math.abs(ratio - (1 + 1 / lambda)) < 1e-9 * ratio) {
                    continue; // on the boundary either answer is a rounding of the other
                }
                assertEquals(ak >= (1 + 1 / lambda) * ak1, gap, "d = 1 form of the gap condition");
            }
            checked++;
            assertEquals(gap, s.nonzero() == k, "instance " + t);
            assertEquals(gap, s.gapHeld());
            if (gap) {
                held++;
                double[][] z = in.scaled(s.scale());
                for (int j = 0; j < a.length; j++) {
                    double expected = s.u()[j] > 0 ? 1 / (1 + lambda * in.d[j]) : 0;
                    assertEquals(expected, s.scale()[j], 1e-12, "gap case keeps the top k shrunk by 1/(1 + lambda d)");
                }
                assertEquals(k, nonzeroGroups(z));
            }
        }
        assertTrue(held > checked / 10 && held < checked * 9 / 10, "both outcomes exercised: " + held + " of " + checked);
    }

    /** §5.2(5): reductions to the SEF prox, to the weighted ridge and to the identity. */
    @Test
    void reductions() {
        Random rnd = new Random(15);
        for (int t = 0; t < 300; t++) {
            int m = 2 + rnd.nextInt(25);
            double[] x = new double[m];
            for (int i = 0; i < m; i++) {
                x[i] = rnd.nextGaussian() * 3;
            }
            int k = 1 + rnd.nextInt(m);
            double lambda = logUniform(rnd, 1e-2, 1e2);
            // SEF theorem (singletons, d = 1), with tau found here by an independent bisection
            double[] absx = Arrays.stream(x).map(Math::abs).toArray();
            double[] w = referenceSefProx(x, k, lambda);
            double[] c = Wgsef.proxScales(absx, null, k, lambda, RootFinder.SORT_SCAN, t).scale();
            for (int i = 0; i < m; i++) {
                assertEquals(w[i], c[i] * x[i], 1e-9 * (1 + Math.abs(x[i])), "SEF prox, instance " + t);
            }
            // k >= m: the weighted ridge x / (1 + lambda d)
            GroupInstance in = GroupInstance.random(rnd, m, 3, true, true);
            double[][] ridge = in.prox(m + rnd.nextInt(3), lambda, RootFinder.RANDOM_PIVOT);
            for (int j = 0; j < m; j++) {
                for (int i = 0; i < in.x[j].length; i++) {
                    assertEquals(in.x[j][i] / (1 + lambda * in.d[j]), ridge[j][i], 1e-12 * (1 + Math.abs(in.x[j][i])));
                }
            }
            // lambda = 0: identity
            double[][] id = in.prox(1, 0, RootFinder.BISECTION);
            for (int j = 0; j < m; j++) {
                assertArrayEquals(in.x[j], id[j], 0);
            }
        }
        // nnz <= k: ridge as well
        GroupInstance sparse = new GroupInstance(new double[][] {{0, 0}, {1, 2}, {0, 0}, {3, -1}}, new double[] {1, 2, 3, 4});
        double[][] z = sparse.prox(2, 0.5, RootFinder.RANDOM_PIVOT);
        assertArrayEquals(new double[] {1 / 2.0, 2 / 2.0}, z[1], 1e-15);
        assertArrayEquals(new double[] {3 / 3.0, -1 / 3.0}, z[3], 1e-15);
    }

    /** The SEF prox of the SEF theorem, u_i = clip(tau |x_i| - lambda, 0, 1), w_i = x_i u_i / (lambda + u_i). */
    private static double[] referenceSefProx(double[] x, int k, double lambda) {
        int nnz = 0;
        for (double v : x) {
            if (v != 0) {
                nnz++;
            }
        }
        double[] w = new double[x.length];
        if (nnz <= k) {
            for (int i = 0; i < x.length; i++) {
                w[i] = x[i] / (1 + lambda);
            }
            return w;
        }
        double lo = 0;
        double hi = 1;
        while (sumU(x, hi, lambda) < k) {
            hi *= 2;
        }
        for (int it = 0; it < 200; it++) {
            double mid = 0.5 * (lo + hi);
            if (sumU(x, mid, lambda) < k) {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        for (int i = 0; i < x.length; i++) {
            double u = Math.min(1, Math.max(0, hi * Math.abs(x[i]) - lambda));
            w[i] = x[i] * u / (lambda + u);
        }
        return w;
    }

    private static double sumU(double[] x, double tau, double lambda) {
        double s = 0;
        for (double v : x) {
            s += Math.min(1, Math.max(0, tau * Math.abs(v) - lambda));
        }
        return s;
    }

    /** §5.2(6): for d = 1 and no tie at k, (1 + lambda) prox(x) is the group hard threshold once lambda is large. */
    @Test
    void largeLambdaIsGroupHardThreshold() {
        Random rnd = new Random(16);
        for (int t = 0; t < 300; t++) {
            GroupInstance in = GroupInstance.random(rnd, 3 + rnd.nextInt(20), 4, false, false);
            int k = 1 + rnd.nextInt(in.m() - 1);
            double[] a = in.norms();
            double[] sorted = a.clone();
            Arrays.sort(sorted);
            double ak = sorted[a.length - k];
            double ak1 = sorted[a.length - k - 1];
            double threshold = ak1 / (ak - ak1);
            for (double lambda : new double[] {threshold * 1.000001, threshold * 100}) {
                double[][] z = in.prox(k, lambda, RootFinder.RANDOM_PIVOT);
                for (int j = 0; j < a.length; j++) {
                    for (int i = 0; i < z[j].length; i++) {
                        double hard = a[j] >= ak ? in.x[j][i] : 0;
                        assertEquals(hard, (1 + lambda) * z[j][i], 1e-9 * (1 + Math.abs(in.x[j][i])));
                    }
                }
            }
            // just below the threshold the gap fails and more than k groups survive
            double[][] below = in.prox(k, threshold * 0.99, RootFinder.RANDOM_PIVOT);
            assertTrue(nonzeroGroups(below) > k);
        }
    }

    /** §5.2(7): prox(c x) = c prox(x), across the float-relevant range. */
    @Test
    void scaleEquivariance() {
        Random rnd = new Random(17);
        for (int t = 0; t < 300; t++) {
            GroupInstance in = GroupInstance.random(rnd, 2 + rnd.nextInt(20), 4, true, true);
            int k = 1 + rnd.nextInt(in.m());
            double lambda = logUniform(rnd, 1e-2, 1e2);
            double[][] z = in.prox(k, lambda, RootFinder.RANDOM_PIVOT);
            for (double c : new double[] {1e-30, 1e-3, 7, 1e30}) {
                double[][] cx = axpy(c - 1, in.x, in.x);
                double[][] zc = in.with(cx).prox(k, lambda, RootFinder.RANDOM_PIVOT);
                double[][] cz = axpy(c - 1, z, z);
                assertTrue(relErr(zc, cz) < 1e-12, "c = " + c + ": " + relErr(zc, cz));
            }
        }
    }

    /** §5.2(8): sign flips, rotations inside a group and permutations of groups (with d) commute with the prox. */
    @Test
    void invariances() {
        Random rnd = new Random(18);
        for (int t = 0; t < 300; t++) {
            GroupInstance in = GroupInstance.random(rnd, 2 + rnd.nextInt(15), 4, true, true);
            int m = in.m();
            int k = 1 + rnd.nextInt(m);
            double lambda = logUniform(rnd, 1e-2, 1e2);
            double[][] z = in.prox(k, lambda, RootFinder.RANDOM_PIVOT);
            // within-group orthogonal map Q_j: random sign flips, a permutation and a plane rotation
            double[][] qx = new double[m][];
            double[][] qz = new double[m][];
            long seed = rnd.nextLong();
            for (int j = 0; j < m; j++) {
                qx[j] = orthogonal(in.x[j], new Random(seed + j));
                qz[j] = orthogonal(z[j], new Random(seed + j));
            }
            assertTrue(relErr(in.with(qx).prox(k, lambda, RootFinder.RANDOM_PIVOT), qz) < 1e-12);
            // group permutation together with d
            int[] perm = shuffled(rnd, m);
            double[][] px = new double[m][];
            double[] pd = new double[m];
            double[][] pz = new double[m][];
            for (int j = 0; j < m; j++) {
                px[j] = in.x[perm[j]];
                pd[j] = in.d[perm[j]];
                pz[j] = z[perm[j]];
            }
            assertTrue(relErr(new GroupInstance(px, pd).prox(k, lambda, RootFinder.RANDOM_PIVOT), pz) < 1e-12);
        }
    }

    private static double[] orthogonal(double[] v, Random rnd) {
        double[] out = v.clone();
        for (int i = 0; i < out.length; i++) {
            if (rnd.nextBoolean()) {
                out[i] = -out[i];
            }
        }
        int[] p = shuffled(rnd, out.length);
        double[] permuted = new double[out.length];
        for (int i = 0; i < out.length; i++) {
            permuted[i] = out[p[i]];
        }
        if (permuted.length >= 2) {
            double th = rnd.nextDouble() * 2 * Math.PI;
            double a = permuted[0];
            double b = permuted[1];
            permuted[0] = Math.cos(th) * a - Math.sin(th) * b;
            permuted[1] = Math.sin(th) * a + Math.cos(th) * b;
        }
        return permuted;
    }

    private static int[] shuffled(Random rnd, int n) {
        int[] p = new int[n];
        for (int i = 0; i < n; i++) {
            p[i] = i;
        }
        for (int i = n - 1; i > 0; i--) {
            int j = rnd.nextInt(i + 1);
            int t = p[i];
            p[i] = p[j];
            p[j] = t;
        }
        return p;
    }

    /** §5.2(9): ||P(x) - P(y)||^2 <= <P(x) - P(y), x - y>. */
    @Test
    void firmNonExpansiveness() {
        Random rnd = new Random(19);
        for (int t = 0; t < INSTANCES; t++) {
            GroupInstance in = GroupInstance.random(rnd, 2 + rnd.nextInt(20), 4, true, rnd.nextBoolean());
            double[][] y = new double[in.m()][];
            double eps = rnd.nextBoolean() ? 1e-3 : 1;
            for (int j = 0; j < in.m(); j++) {
                y[j] = in.x[j].clone();
                for (int i = 0; i < y[j].length; i++) {
                    y[j][i] += eps * rnd.nextGaussian();
                }
            }
            int k = 1 + rnd.nextInt(in.m());
            double lambda = logUniform(rnd, 1e-2, 1e2);
            double[][] px = in.prox(k, lambda, RootFinder.RANDOM_PIVOT);
            double[][] py = in.with(y).prox(k, lambda, RootFinder.RANDOM_PIVOT);
            double[][] dp = axpy(-1, py, px);
            double[][] dxy = axpy(-1, y, in.x);
            assertTrue(dot(dp, dp) <= dot(dp, dxy) + 1e-12 * (1 + dot(dxy, dxy)));
        }
    }

    /** §5.2(10) and §1.2: value against an independent closed form, limits, and gradient against finite differences. */
    @Test
    void valueAndGradient() {
        Random rnd = new Random(20);
        for (int t = 0; t < 500; t++) {
            GroupInstance in = GroupInstance.random(rnd, 2 + rnd.nextInt(20), 3, true, rnd.nextBoolean());
            int m = in.m();
            int k = 1 + rnd.nextInt(m);
            double[] a = in.norms();
            double[] b = new double[m];
            for (int j = 0; j < m; j++) {
                b[j] = Math.sqrt(in.d[j]) * a[j];
            }
            double s = Wgsef.value(a, in.d, k);
            assertEquals(referenceSef(b, k), s, 1e-12 * (1 + s));
            assertEquals(Wgsef.sef(b, k), s, 1e-12 * (1 + s));
            double l1 = Arrays.stream(b).sum();
            assertEquals(0.5 * l1 * l1, Wgsef.value(a, in.d, 1), 1e-12 * (1 + l1 * l1));
            assertEquals(Wgsef.ridge(a, in.d), Wgsef.value(a, in.d, m), 1e-12 * (1 + s));
            assertTrue(s >= Wgsef.ridge(a, in.d) * (1 - 1e-12));
            // 2-homogeneity
            assertEquals(9 * s, Wgsef.value(Arrays.stream(a).map(v -> 3 * v).toArray(), in.d, k), 1e-11 * (1 + s));
            // gradient d_j x_j / u_j against central differences, away from zero groups
            if (Arrays.stream(a).anyMatch(v -> v == 0)) {
                continue;
            }
            double[] gs = Wgsef.gradientScales(a, in.d, k);
            for (int j = 0; j < m; j++) {
                for (int i = 0; i < in.x[j].length; i++) {
                    double h = 1e-6 * (1 + Math.abs(in.x[j][i]));
                    double fp = valueWith(in, j, i, h, k);
                    double fm = valueWith(in, j, i, -h, k);
                    double fd = (fp - fm) / (2 * h);
                    double g = gs[j] * in.x[j][i];
                    assertEquals(g, fd, 1e-5 * (1 + Math.abs(g)), "gradient, instance " + t);
                }
            }
        }
    }

    private static double valueWith(GroupInstance in, int j, int i, double h, int k) {
        double[][] x = new double[in.m()][];
        for (int g = 0; g < in.m(); g++) {
            x[g] = in.x[g].clone();
        }
        x[j][i] += h;
        return Wgsef.value(GroupInstance.norms(x), in.d, k);
    }

    /** §1.2 closed form by sorting: N in 0..k-1 with |x_[N]| > T_N/(k-N) >= |x_[N+1]|. */
    private static double referenceSef(double[] b, int k) {
        double[] s = Arrays.stream(b).map(Math::abs).map(v -> -v).sorted().map(v -> -v).toArray();
        int nnz = (int) Arrays.stream(s).filter(v -> v > 0).count();
        double total = Arrays.stream(s).map(v -> v * v).sum();
        if (nnz <= k) {
            return 0.5 * total;
        }
        for (int n = 0; n < k; n++) {
            double tail = 0;
            for (int i = n; i < s.length; i++) {
                tail += s[i];
            }
            double thr = tail / (k - n);
            boolean left = n == 0 || s[n - 1] > thr;
            if (left && thr >= s[n]) {
                double head = 0;
                for (int i = 0; i < n; i++) {
                    head += s[i] * s[i];
                }
                return 0.5 * head + tail * tail / (2.0 * (k - n));
            }
        }
        throw new AssertionError("no N found");
    }

    /** Weak duality S(x) + S*(y) >= <x, y> for arbitrary pairs. */
    @Test
    void fenchelYoungInequality() {
        Random rnd = new Random(21);
        for (int t = 0; t < 500; t++) {
            GroupInstance x = GroupInstance.random(rnd, 2 + rnd.nextInt(15), 3, true, true);
            double[][] y = new double[x.m()][];
            for (int j = 0; j < x.m(); j++) {
                y[j] = new double[x.x[j].length];
                for (int i = 0; i < y[j].length; i++) {
                    y[j][i] = rnd.nextGaussian();
                }
            }
            int k = 1 + rnd.nextInt(x.m());
            double lhs = Wgsef.value(x.norms(), x.d, k) + Wgsef.conjugate(GroupInstance.norms(y), x.d, k);
            assertTrue(lhs >= dot(x.x, y) - 1e-12 * (1 + Math.abs(lhs)));
        }
    }

    /** §5.2(12): all-zero input, k = 1, k = m - 1, m = 1, huge and tiny norms, equal norms. */
    @Test
    void edgeCases() {
        for (RootFinder f : RootFinder.values()) {
            Wgsef.ProxScales zero = Wgsef.proxScales(new double[5], null, 2, 1, f, 1);
            assertEquals(0, zero.nonzero());
            Wgsef.ProxScales single = Wgsef.proxScales(new double[] {2}, new double[] {3}, 1, 1, f, 1);
            assertEquals(0.25, single.scale()[0], 1e-15);
            double[] a = {5, 4, 3, 2, 1};
            Wgsef.ProxScales km1 = Wgsef.proxScales(a, null, 4, 1, f, 1);
            assertEquals(4, Arrays.stream(km1.u()).sum(), 1e-12);
            // equal norms: no selection, every group gets u = k / m
            Wgsef.ProxScales ties = Wgsef.proxScales(new double[] {2, 2, 2, 2}, null, 2, 0.3, f, 1);
            for (double u : ties.u()) {
                assertEquals(0.5, u, 1e-12);
            }
            for (double big : new double[] {1e-150, 1e150}) {
                double[] scaled = Arrays.stream(a).map(v -> v * big).toArray();
                Wgsef.ProxScales s = Wgsef.proxScales(scaled, null, 2, 1, f, 1);
                assertArrayEquals(Wgsef.proxScales(a, null, 2, 1, f, 1).scale(), s.scale(), 1e-12);
            }
        }
        assertEquals(0, Wgsef.value(new double[3], null, 1));
        assertEquals(0, Wgsef.conjugate(new double[3], null, 2));
    }

    @Test
    void badArgumentsAreRejected() {
        double[] a = {1, 2};
        IllegalArgumentException k0 = assertThrows(IllegalArgumentException.class,
                () -> Wgsef.proxScales(a, null, 0, 1, RootFinder.RANDOM_PIVOT, 1));
        assertTrue(k0.getMessage().startsWith("k:"), k0.getMessage());
        IllegalArgumentException lam = assertThrows(IllegalArgumentException.class,
                () -> Wgsef.proxScales(a, null, 1, -1, RootFinder.RANDOM_PIVOT, 1));
        assertTrue(lam.getMessage().startsWith("lambda"), lam.getMessage());
        IllegalArgumentException d = assertThrows(IllegalArgumentException.class,
                () -> Wgsef.value(a, new double[] {1, 0}, 1));
        assertTrue(d.getMessage().startsWith("weights:"), d.getMessage());
        IllegalArgumentException nan = assertThrows(IllegalArgumentException.class,
                () -> Wgsef.value(new double[] {1, Double.NaN}, null, 1));
        assertTrue(nan.getMessage().contains("group 1"), nan.getMessage());
        assertFalse(Wgsef.gapCondition(new double[] {3, 2, 1}, null, 1, 0));
    }
}
