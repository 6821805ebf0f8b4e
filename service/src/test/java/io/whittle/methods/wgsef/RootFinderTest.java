package io.whittle.methods.wgsef;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Random;
import org.junit.jupiter.api.Test;

/** The three root finders of wgsef.md §2.4 give the same u (5,000 instances, many with ties), and are seeded. */
class RootFinderTest {

    @Test
    void finderAgreeOnRandomInstancesWithTies() {
        Random rnd = new Random(31);
        int flat = 0;
        for (int t = 0; t < 5000; t++) {
            int m = 2 + rnd.nextInt(60);
            double[] a = new double[m];
            double[] d = new double[m];
            boolean ties = t % 2 == 0;
            for (int j = 0; j < m; j++) {
                // integer norms in a small range give equal norms and coinciding breakpoints
                a[j] = ties ? rnd.nextInt(6) : Math.exp(rnd.nextGaussian());
                d[j] = ties ? 1 + rnd.nextInt(3) : 0.5 + rnd.nextDouble();
            }
            int k = 1 + rnd.nextInt(m);
            double lambda = ties ? new double[] {0.5, 1, 2, 3}[rnd.nextInt(4)] : Math.exp(3 * rnd.nextGaussian());
            Wgsef.ProxScales ref = Wgsef.proxScales(a, d, k, lambda, RootFinder.SORT_SCAN, 0);
            for (RootFinder f : new RootFinder[] {RootFinder.RANDOM_PIVOT, RootFinder.BISECTION}) {
                Wgsef.ProxScales s = Wgsef.proxScales(a, d, k, lambda, f, t);
                assertEquals(ref.proxCase(), s.proxCase());
                assertArrayEquals(ref.u(), s.u(), 1e-12, f + ", instance " + t);
                assertArrayEquals(ref.scale(), s.scale(), 1e-12, f + ", instance " + t);
                for (int j = 0; j < m; j++) {
                    assertEquals(ref.u()[j] > 0, s.u()[j] > 0, f + ": support, instance " + t);
                }
                assertEquals(ref.nonzero(), s.nonzero(), f + ", instance " + t);
            }
            if (ref.proxCase() == Wgsef.ProxCase.ENVELOPE && ref.nonzero() == k) {
                flat++;
            }
        }
        assertTrue(flat > 200, "the flat-root (gap) case is exercised: " + flat);
    }

    @Test
    void randomPivotIsDeterministicPerSeedAndSeedIndependentInResult() {
        Random rnd = new Random(32);
        double[] a = new double[500];
        for (int j = 0; j < a.length; j++) {
            a[j] = Math.abs(rnd.nextGaussian());
        }
        Wgsef.ProxScales s1 = Wgsef.proxScales(a, null, 40, 0.3, RootFinder.RANDOM_PIVOT, 99);
        Wgsef.ProxScales s2 = Wgsef.proxScales(a, null, 40, 0.3, RootFinder.RANDOM_PIVOT, 99);
        assertArrayEquals(s1.scale(), s2.scale(), 0);
        assertEquals(Double.doubleToLongBits(s1.tau()), Double.doubleToLongBits(s2.tau()));
        Wgsef.ProxScales s3 = Wgsef.proxScales(a, null, 40, 0.3, RootFinder.RANDOM_PIVOT, 12345);
        assertArrayEquals(s1.scale(), s3.scale(), 1e-13);
    }

    @Test
    void smallProblemScanAgreesWithTheGenericFinders() {
        Random rnd = new Random(33);
        int[] order = new int[SmallProblemProx.MAX_GROUPS];
        double[] inverse = new double[SmallProblemProx.MAX_GROUPS];
        for (int t = 0; t < 20000; t++) {
            int m = 1 + rnd.nextInt(SmallProblemProx.MAX_GROUPS);
            double[] a = new double[m];
            boolean ties = t % 2 == 0;
            for (int j = 0; j < m; j++) {
                a[j] = ties ? rnd.nextInt(5) : (rnd.nextInt(5) == 0 ? 0 : Math.exp(rnd.nextGaussian()));
            }
            int k = 1 + rnd.nextInt(m);
            double d = ties ? 1 + rnd.nextInt(3) : 0.2 + 3 * rnd.nextDouble();
            double lambda = ties ? new double[] {0.25, 0.5, 1, 2}[rnd.nextInt(4)] : Math.exp(2 * rnd.nextGaussian());
            double[] dd = new double[m];
            java.util.Arrays.fill(dd, d);
            Wgsef.ProxScales ref = Wgsef.proxScales(a, dd, k, lambda, RootFinder.SORT_SCAN, 0);
            double[] scale = new double[m];
            int nonzero = SmallProblemProx.solve(a, m, k, lambda * d, scale, order, inverse);
            assertArrayEquals(ref.scale(), scale, 1e-12, "instance " + t);
            assertEquals(ref.nonzero(), nonzero, "instance " + t);
        }
    }

    @Test
    void nmPartitionProxIsTheBlockwiseSefProx() {
        Random rnd = new Random(34);
        int rows = 6;
        int cols = 24;
        float[] w = Calibration.gaussian(rnd, rows * cols);
        w[8] = w[9] = w[10] = 0; // a block with one non-zero entry (CASE A)
        GroupPartition p = GroupPartition.of(GroupSpec.parse("nm:3:8"), new GroupPartition.Matrix("w", rows, cols), 0);
        float[] x = w.clone();
        Wgsef.Summary s = Wgsef.prox(p, 2.0, 3, 0.4, RootFinder.RANDOM_PIVOT, 1, java.util.List.of(x));
        int nonzero = 0;
        boolean gap = true;
        for (int b = 0; b < rows * cols / 8; b++) {
            double[] a = new double[8];
            for (int j = 0; j < 8; j++) {
                a[j] = Math.abs(w[8 * b + j]);
            }
            double[] dd = new double[8];
            java.util.Arrays.fill(dd, 2.0);
            Wgsef.ProxScales ref = Wgsef.proxScales(a, dd, 3, 0.4, RootFinder.BISECTION, 0);
            for (int j = 0; j < 8; j++) {
                assertEquals((float) (ref.scale()[j] * w[8 * b + j]), x[8 * b + j], 1e-6f * (1 + Math.abs(w[8 * b + j])));
            }
            nonzero += ref.nonzero();
            gap &= ref.gapHeld();
        }
        assertEquals(nonzero, s.nonzeroGroups());
        assertEquals(gap, s.gapHeld());
        assertEquals(rows * cols / 8, s.problems());
    }
}
