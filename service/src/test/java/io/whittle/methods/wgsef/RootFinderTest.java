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
                    assertEquals(ref.u()[j] > 1e-12, s.u()[j] > 1e-12, f + ": support, instance " + t);
                }
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
}
