package io.whittle.methods.wgsef;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.api.Test;

/** The worked examples of wgsef.md §5.1, for every root finder. */
class WgsefWorkedExamplesTest {

    private static final double TOL = 1e-12;

    private record Example(String id, GroupInstance in, int k, double lambda, double tauLo, double tauHi, double[] u,
                           double[][] z, Wgsef.ProxCase proxCase) {
    }

    private static double[][] g(double[]... groups) {
        return groups;
    }

    private static double[] v(double... values) {
        return values;
    }

    private static List<Example> examples() {
        return List.of(
                new Example("E1", GroupInstance.singletons(3, 2, 1), 1, 1, 0.6, 0.6, v(0.8, 0.2, 0),
                        g(v(4.0 / 3), v(1.0 / 3), v(0)), Wgsef.ProxCase.ENVELOPE),
                new Example("E2", GroupInstance.singletons(3, 1, 0.5), 1, 1, 2.0 / 3, 1, v(1, 0, 0),
                        g(v(1.5), v(0), v(0)), Wgsef.ProxCase.ENVELOPE),
                new Example("E3", GroupInstance.singletons(4, 3, 2, 1), 2, 0.5, 0.4, 0.4, v(1, 0.7, 0.3, 0),
                        g(v(8.0 / 3), v(7.0 / 4), v(3.0 / 4), v(0)), Wgsef.ProxCase.ENVELOPE),
                new Example("E4", new GroupInstance(g(v(3, 4), v(0, 2), v(1, 0)), GroupInstance.ones(3)), 1, 1, 0.4, 0.5,
                        v(1, 0, 0), g(v(1.5, 2), v(0, 0), v(0, 0)), Wgsef.ProxCase.ENVELOPE),
                new Example("E5w", new GroupInstance(g(v(3, 0), v(2, 0)), v(1, 4)), 1, 1, 2.0 / 3, 1, v(1, 0),
                        g(v(1.5, 0), v(0, 0)), Wgsef.ProxCase.ENVELOPE),
                new Example("E5u", new GroupInstance(g(v(3, 0), v(2, 0)), v(1, 1)), 1, 1, 0.6, 0.6, v(0.8, 0.2),
                        g(v(4.0 / 3, 0), v(1.0 / 3, 0)), Wgsef.ProxCase.ENVELOPE),
                new Example("E6", GroupInstance.singletons(5, 4.5, 1), 1, 1, 6.0 / 19, 6.0 / 19, v(11.0 / 19, 8.0 / 19, 0),
                        g(v(11.0 / 6), v(4.0 / 3), v(0)), Wgsef.ProxCase.ENVELOPE),
                new Example("E6'", GroupInstance.singletons(5, 4.5, 1), 1, 20, 21.0 / 5, 20 / 4.5, v(1, 0, 0),
                        g(v(5.0 / 21), v(0), v(0)), Wgsef.ProxCase.ENVELOPE),
                new Example("E7", GroupInstance.singletons(-3, 2, -1), 2, 1, 1, 1, v(1, 1, 0),
                        g(v(-1.5), v(1), v(0)), Wgsef.ProxCase.ENVELOPE),
                new Example("E8", GroupInstance.singletons(1, 1, 1), 1, 1, 4.0 / 3, 4.0 / 3, v(1.0 / 3, 1.0 / 3, 1.0 / 3),
                        g(v(0.25), v(0.25), v(0.25)), Wgsef.ProxCase.ENVELOPE),
                new Example("E9", GroupInstance.singletons(3, 2, 1), 3, 1, 0, 0, null,
                        g(v(1.5), v(1), v(0.5)), Wgsef.ProxCase.RIDGE),
                new Example("E10", new GroupInstance(g(v(0, 0), v(2, 0)), GroupInstance.ones(2)), 1, 1, 0, 0, null,
                        g(v(0, 0), v(1, 0)), Wgsef.ProxCase.RIDGE));
    }

    @ParameterizedTest
    @EnumSource(RootFinder.class)
    void proxMatchesEveryWorkedExample(RootFinder finder) {
        for (Example e : examples()) {
            Wgsef.ProxScales s = Wgsef.proxScales(e.in().norms(), e.in().d, e.k(), e.lambda(), finder, 7);
            assertEquals(e.proxCase(), s.proxCase(), e.id());
            if (e.proxCase() == Wgsef.ProxCase.ENVELOPE) {
                assertTrue(s.tau() >= e.tauLo() - TOL && s.tau() <= e.tauHi() + TOL,
                        e.id() + ": tau " + s.tau() + " outside [" + e.tauLo() + ", " + e.tauHi() + "]");
                assertArrayEquals(e.u(), s.u(), TOL, e.id() + " u");
                double sum = 0;
                for (double uj : s.u()) {
                    sum += uj;
                }
                assertEquals(e.k(), sum, TOL, e.id() + ": sum u = k in CASE B");
            }
            double[][] z = e.in().scaled(s.scale());
            for (int j = 0; j < z.length; j++) {
                assertArrayEquals(e.z()[j], z[j], TOL, e.id() + " z_" + j);
            }
        }
    }

    @Test
    void exactlyKExamplesReportTheGap() {
        // E2, E4, E5w, E6', E7 end with exactly k groups (gap held); E1, E3, E5u, E6, E8 do not
        for (Example e : examples()) {
            Wgsef.ProxScales s = Wgsef.proxScales(e.in().norms(), e.in().d, e.k(), e.lambda(), RootFinder.RANDOM_PIVOT, 1);
            boolean exactlyK = List.of("E2", "E4", "E5w", "E6'", "E7").contains(e.id());
            if (e.proxCase() == Wgsef.ProxCase.ENVELOPE) {
                assertEquals(exactlyK, s.nonzero() == e.k(), e.id());
                assertEquals(exactlyK, s.gapHeld(), e.id());
                assertEquals(exactlyK, Wgsef.gapCondition(e.in().norms(), e.in().d, e.k(), e.lambda()), e.id());
            }
        }
    }

    @Test
    void valuesMatchTheTable() {
        assertEquals(18, Wgsef.sef(v(3, 2, 1), 1), TOL);
        assertEquals(9, Wgsef.sef(v(3, 2, 1), 2), TOL);
        assertEquals(25, Wgsef.sef(v(4, 3, 2, 1), 2), TOL);
        assertEquals(4, Wgsef.sef(v(1, 1, 1, 1), 2), TOL);
        assertEquals(17, Wgsef.sef(v(5, 1, 1, 1), 2), TOL);
        GroupInstance e4 = new GroupInstance(g(v(3, 4), v(0, 2), v(1, 0)), GroupInstance.ones(3));
        assertEquals(32, Wgsef.value(e4.norms(), e4.d, 1), TOL);
        GroupInstance e5w = new GroupInstance(g(v(3, 0), v(2, 0)), v(1, 4));
        assertEquals(24.5, Wgsef.value(e5w.norms(), e5w.d, 1), TOL);
    }

    @Test
    void kEqualsOneIsGroupSoftThresholding() {
        // prox of (lambda/2)(sum_j a_j)^2: z_j = x_j max(0, 1 - rho / a_j), rho = lambda sum_j ||z_j||; E1: rho = 5/3
        double[] x = v(3, 2, 1);
        double[] z = Wgsef.proxScales(x, null, 1, 1, RootFinder.RANDOM_PIVOT, 3).scale();
        double rho = 0;
        for (int j = 0; j < x.length; j++) {
            rho += z[j] * x[j];
        }
        assertEquals(5.0 / 3, rho, TOL);
        for (int j = 0; j < x.length; j++) {
            assertEquals(x[j] * Math.max(0, 1 - rho / x[j]), z[j] * x[j], TOL);
        }
    }

    @Test
    void matrixPartitionReproducesE4() {
        // E4 as the three columns of W = [[3, 0, 1], [4, 2, 0]]
        float[] w = {3, 0, 1, 4, 2, 0};
        GroupPartition p = GroupPartition.of(GroupSpec.parse("columns"), new GroupPartition.Matrix("w", 2, 3), 0);
        Wgsef.Summary s = Wgsef.prox(p, 1, 1, 1, RootFinder.RANDOM_PIVOT, 5, List.of(w));
        assertArrayEquals(new float[] {1.5f, 0, 0, 2, 0, 0}, w, 1e-6f);
        assertEquals(1, s.nonzeroGroups());
        assertTrue(s.gapHeld());
        assertEquals(32, Wgsef.value(p, 1, 1, List.of(new float[] {3, 0, 1, 4, 2, 0})), 1e-9);
    }
}
