package io.whittle.methods.wgsef;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.whittle.methods.wgsef.GroupPartition.Matrix;
import java.util.BitSet;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;

/** The final projection (wgsef.md §2.3, service rule): top-k by weighted norm, ties to the lower index, undo. */
class ExactKProjectionTest {

    private static GroupPartition columns(int rows, int cols) {
        return GroupPartition.of(GroupSpec.parse("columns"), new Matrix("w", rows, cols), 0);
    }

    @Test
    void topKBreaksTiesByLowerIndex() {
        assertArrayEquals(new int[] {1, 3, 0}, ExactKProjection.topK(new double[] {2, 5, 1, 5, 2}, 3));
        assertArrayEquals(new int[] {0, 1}, ExactKProjection.topK(new double[] {1, 1, 1, 1}, 2));
        // constant matrix: every column ties, the first k survive
        float[] w = new float[4 * 6];
        java.util.Arrays.fill(w, 0.5f);
        ExactKProjection.Selection s = ExactKProjection.project(columns(4, 6), 2, List.of(w));
        assertEquals(BitSet.valueOf(new long[] {0b11}), s.kept());
        assertFalse(s.separated());
    }

    @Test
    void proxProjectUndoFollowsTheServiceRule() {
        // E1 as a 1 x 3 matrix: the prox keeps 2 groups (no gap); the projection keeps group 0 and restores it
        float[] e1 = {3, 2, 1};
        ExactKProjection.Outcome o = ExactKProjection.proxProjectUndo(columns(1, 3), 1, 1, 1, RootFinder.RANDOM_PIVOT, 1, List.of(e1));
        assertEquals(2, o.nonzeroBeforeProjection());
        assertFalse(o.gapHeld());
        assertEquals(1, o.keptCount());
        assertArrayEquals(new float[] {3, 0, 0}, e1);
        // E2: the gap held, the projection removes nothing the prox kept, the undo restores 3
        float[] e2 = {3, 1, 0.5f};
        ExactKProjection.Outcome o2 = ExactKProjection.proxProjectUndo(columns(1, 3), 1, 1, 1, RootFinder.RANDOM_PIVOT, 1, List.of(e2));
        assertTrue(o2.gapHeld());
        assertEquals(1, o2.nonzeroBeforeProjection());
        assertArrayEquals(new float[] {3, 0, 0}, e2);
    }

    @Test
    void whenTheGapHoldsTheProjectionKeepsTheProxSupport() {
        Random rnd = new Random(51);
        int held = 0;
        for (int t = 0; t < 200; t++) {
            float[] w = Calibration.gaussian(rnd, 8 * 20);
            GroupPartition p = columns(8, 20);
            double lambda = Math.exp(4 * rnd.nextGaussian());
            float[] prox = w.clone();
            Wgsef.Summary s = Wgsef.prox(p, 1, 5, lambda, RootFinder.RANDOM_PIVOT, t, List.of(prox));
            float[] projected = w.clone();
            ExactKProjection.Outcome o = ExactKProjection.proxProjectUndo(p, 1, 5, lambda, RootFinder.RANDOM_PIVOT, t, List.of(projected));
            assertEquals(s.gapHeld(), o.gapHeld());
            assertEquals(5, o.keptCount());
            assertEquals(5, p.nonzeroGroups(List.of(projected)));
            if (o.gapHeld()) {
                held++;
                for (int i = 0; i < w.length; i++) {
                    assertEquals(prox[i] != 0, projected[i] != 0, "same support");
                }
            }
            for (int i = 0; i < w.length; i++) {
                assertTrue(projected[i] == 0 || projected[i] == w[i], "kept groups are restored exactly");
            }
        }
        assertTrue(held > 10 && held < 190, "both cases exercised: " + held);
    }

    @Test
    void nmProjectionKeepsNPerBlock() {
        Random rnd = new Random(52);
        GroupPartition p = GroupPartition.of(GroupSpec.parse("nm:2:4"), new Matrix("w", 6, 16), 0);
        float[] w = Calibration.gaussian(rnd, 6 * 16);
        w[4] = w[5] = w[6] = w[7] = 0; // an all-zero block still keeps 2 (zero) entries
        float[] x = w.clone();
        ExactKProjection.Selection s = ExactKProjection.project(p, 2, List.of(x));
        assertEquals(2 * 24, s.keptCount());
        for (int b = 0; b < 24; b++) {
            int nz = 0;
            float[] block = java.util.Arrays.copyOfRange(w, 4 * b, 4 * b + 4);
            for (int j = 0; j < 4; j++) {
                if (x[4 * b + j] != 0) {
                    nz++;
                    // a kept entry is at least as large as every dropped one
                    for (int i = 0; i < 4; i++) {
                        if (x[4 * b + i] == 0) {
                            assertTrue(Math.abs(block[j]) >= Math.abs(block[i]));
                        }
                    }
                }
            }
            assertEquals(b == 1 ? 0 : 2, nz, "block " + b);
        }
        assertTrue(s.kept().get(4) && s.kept().get(5), "zero block: the lowest indices are kept");
    }
}
