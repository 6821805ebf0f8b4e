package io.whittle.methods.wgsef;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.whittle.methods.wgsef.GroupPartition.Matrix;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;

/** The layer-wise solver and the magnitude baseline (issue 5 quality bar), on seeded correlated calibration data. */
class LayerwiseSolverTest {

    private static final LayerwiseSolver LAYERWISE = new LayerwiseSolver(LayerwiseSolver.Options.defaults());
    private static final MagnitudeBaseline MAGNITUDE = new MagnitudeBaseline();

    /** One test case: a partition, its matrices, their calibration inputs and an independent group-id function. */
    private record Case(GroupPartition partition, int k, List<float[]> matrices, List<float[]> inputs, int samples,
                        GroupOf groupOf) {
    }

    @FunctionalInterface
    private interface GroupOf {
        int of(int member, int row, int col);
    }

    private static Case single(String spec, String name, int rows, int cols, int headDim, Keep keep, Random rnd,
                               GroupOf groupOf) {
        GroupPartition p = GroupPartition.of(GroupSpec.parse(spec), new Matrix(name, rows, cols), headDim);
        int n = 4 * cols;
        return new Case(p, p.level(keep), List.of(Calibration.gaussian(rnd, rows * cols)),
                List.of(Calibration.correlatedInputs(rnd, n, cols)), n, groupOf);
    }

    private static Case mlp(Random rnd) {
        int inter = 24;
        int hidden = 16;
        GroupPartition p = GroupPartition.mlpChannels(new Matrix("mlp.gate_proj.weight", inter, hidden),
                new Matrix("mlp.up_proj.weight", inter, hidden), new Matrix("mlp.down_proj.weight", hidden, inter));
        int n = 96;
        float[] x = Calibration.correlatedInputs(rnd, n, hidden);
        float[] act = Calibration.correlatedInputs(rnd, n, inter); // stands in for act(gate x) * up x
        return new Case(p, p.level(Keep.fraction(1.0 / 3)), List.of(Calibration.gaussian(rnd, inter * hidden),
                Calibration.gaussian(rnd, inter * hidden), Calibration.gaussian(rnd, hidden * inter)),
                List.of(x, x, act), n, (m, r, c) -> m < 2 ? r : c);
    }

    private static List<Case> everyGroupType(Random rnd) {
        List<Case> cases = new ArrayList<>();
        cases.add(single("columns", "w", 32, 48, 0, Keep.fraction(1.0 / 3), rnd, (m, r, c) -> c));
        cases.add(single("rows", "w", 32, 48, 0, Keep.fraction(0.25), rnd, (m, r, c) -> r));
        cases.add(single("heads", "l.self_attn.q_proj.weight", 32, 24, 8, Keep.count(2), rnd, (m, r, c) -> r / 8));
        cases.add(single("heads", "l.self_attn.o_proj.weight", 24, 32, 8, Keep.count(3), rnd, (m, r, c) -> c / 8));
        cases.add(single("blocks:8x8", "w", 32, 48, 0, Keep.fraction(0.5), rnd, (m, r, c) -> (r / 8) * 6 + c / 8));
        cases.add(single("nm:2:4", "w", 16, 32, 0, null, rnd, (m, r, c) -> r * 32 + c));
        cases.add(mlp(rnd));
        return cases;
    }

    private static List<Gram> grams(Case c) {
        List<Gram> out = new ArrayList<>();
        for (int i = 0; i < c.inputs().size(); i++) {
            int dim = c.partition().members().get(i).matrix().cols();
            out.add(Gram.ofInputs(c.inputs().get(i), c.samples(), dim));
        }
        return out;
    }

    private static void close(List<Gram> grams) {
        for (Gram g : grams) {
            g.close();
        }
    }

    /** Non-zero groups per problem, counted with the test's own group ids. */
    private static int[] nonzeroPerProblem(Case c, List<float[]> out) {
        BitSet nonzero = new BitSet();
        for (int m = 0; m < out.size(); m++) {
            Matrix mat = c.partition().members().get(m).matrix();
            for (int r = 0; r < mat.rows(); r++) {
                for (int col = 0; col < mat.cols(); col++) {
                    if (out.get(m)[r * mat.cols() + col] != 0) {
                        nonzero.set(c.groupOf().of(m, r, col));
                    }
                }
            }
        }
        int ps = c.partition().problemSize();
        int[] counts = new int[c.partition().problems()];
        for (int g = nonzero.nextSetBit(0); g >= 0; g = nonzero.nextSetBit(g + 1)) {
            counts[g / ps]++;
        }
        return counts;
    }

    @Test
    void everyGroupTypeEndsWithExactlyKGroups() {
        for (Case c : everyGroupType(new Random(61))) {
            List<Gram> grams = grams(c);
            try {
                for (GroupSolver solver : List.of(LAYERWISE, MAGNITUDE)) {
                    WgsefSolution s = solver.solve(c.partition(), GroupWeights.UNIFORM, c.k(), c.matrices(), grams);
                    String what = solver.name() + " on " + c.partition();
                    WgsefResult r = s.result();
                    assertEquals(c.k() * c.partition().problems(), r.keptCount(), what);
                    assertEquals(r.keptCount(), r.keptGroups().cardinality(), what);
                    assertEquals(r.keptCount(), r.nonzeroGroups(), what);
                    for (int count : nonzeroPerProblem(c, s.matrices())) {
                        assertEquals(c.k(), count, what);
                    }
                    for (float[] w : s.matrices()) {
                        for (float v : w) {
                            assertTrue(Float.isFinite(v), what);
                        }
                    }
                    double err = r.relativeError().getAsDouble();
                    assertTrue(err >= 0 && err < 1.5, what + ": error " + err);
                    // the reported error is the one computed directly from X
                    for (int m = 0; m < s.matrices().size(); m++) {
                        Matrix mat = c.partition().members().get(m).matrix();
                        double direct = Calibration.relativeError(c.inputs().get(m), c.samples(), mat.cols(),
                                c.matrices().get(m), s.matrices().get(m), mat.rows());
                        assertEquals(direct, r.memberErrors().get(m).relativeError(), 1e-4 * (1 + direct), what);
                    }
                }
            } finally {
                close(grams);
            }
        }
    }

    @Test
    void mlpChannelsRemoveWholeChannelsAndKeepGateUpRowsExact() {
        Case c = mlp(new Random(62));
        List<Gram> grams = grams(c);
        try {
            WgsefSolution s = LAYERWISE.solve(c.partition(), GroupWeights.UNIFORM, c.k(), c.matrices(), grams);
            BitSet kept = s.result().keptGroups();
            int inter = 24;
            int hidden = 16;
            for (int j = 0; j < inter; j++) {
                for (int h = 0; h < hidden; h++) {
                    for (int m = 0; m < 2; m++) {
                        float expected = kept.get(j) ? c.matrices().get(m)[j * hidden + h] : 0f;
                        assertEquals(expected, s.matrices().get(m)[j * hidden + h], "gate/up row " + j);
                    }
                    assertEquals(kept.get(j), s.matrices().get(2)[h * inter + j] != 0, "down column " + j);
                }
            }
            assertEquals(List.of("mlp.gate_proj.weight", "mlp.up_proj.weight", "mlp.down_proj.weight"),
                    s.result().memberErrors().stream().map(WgsefResult.MemberError::tensor).toList());
            assertEquals("mlp.", s.result().name());
        } finally {
            close(grams);
        }
    }

    @Test
    void layerwiseBeatsMagnitudeOnCorrelatedInputs() {
        double layerwise = 0;
        double magnitude = 0;
        double magnitudeRefit = 0;
        int runs = 0;
        for (int seed = 0; seed < 6; seed++) {
            Random rnd = new Random(100 + seed);
            for (Case c : List.of(single("columns", "w", 32, 48, 0, Keep.fraction(1.0 / 3), rnd, null),
                    single("blocks:8x8", "w", 32, 48, 0, Keep.fraction(0.5), rnd, null))) {
                List<Gram> grams = grams(c);
                try {
                    WgsefResult lw = LAYERWISE.solve(c.partition(), GroupWeights.UNIFORM, c.k(), c.matrices(), grams).result();
                    WgsefResult mg = MAGNITUDE.solve(c.partition(), GroupWeights.UNIFORM, c.k(), c.matrices(), grams).result();
                    WgsefResult.Stage start = lw.lambdaPath().get(0);
                    WgsefResult.Stage chosen = lw.lambdaPath().get(lw.bestStage());
                    // the chosen support is never worse than the refit magnitude support (stage 0 of the path)
                    assertTrue(chosen.objective() <= start.objective());
                    for (WgsefResult.Stage st : lw.lambdaPath()) {
                        assertTrue(chosen.objective() <= st.objective(), "the best stage is kept");
                    }
                    layerwise += lw.relativeError().getAsDouble();
                    magnitude += mg.relativeError().getAsDouble();
                    magnitudeRefit += start.relativeError();
                    runs++;
                } finally {
                    close(grams);
                }
            }
        }
        assertTrue(layerwise < magnitude, "layerwise " + layerwise / runs + " vs magnitude " + magnitude / runs);
        assertTrue(layerwise < magnitudeRefit, "layerwise " + layerwise / runs + " vs refit magnitude " + magnitudeRefit / runs);
    }

    @Test
    void lambdaPathRunsFromSmallToTheGap() {
        Case c = single("columns", "w", 32, 48, 0, Keep.fraction(1.0 / 3), new Random(63), null);
        List<Gram> grams = grams(c);
        try {
            WgsefResult r = LAYERWISE.solve(c.partition(), GroupWeights.UNIFORM, c.k(), c.matrices(), grams).result();
            List<WgsefResult.Stage> path = r.lambdaPath();
            assertTrue(path.size() >= 3);
            assertEquals(0, path.get(0).lambda());
            for (int i = 2; i < path.size(); i++) {
                assertEquals(3, path.get(i).relativeLambda() / path.get(i - 1).relativeLambda(), 1e-12);
                assertTrue(path.get(i).iterations() >= 1);
            }
            assertEquals(0.01, path.get(1).relativeLambda(), 1e-15);
            WgsefResult.Stage last = path.get(path.size() - 1);
            assertTrue(last.gapHeld() && last.nonzeroGroups() == c.k(), "the path ends at exactly k with the gap: " + last);
            assertTrue(path.get(1).nonzeroGroups() > c.k(), "the path starts with more than k groups");
        } finally {
            close(grams);
        }
    }

    @Test
    void weightsOnlyRescaleLambda() {
        Case c = single("blocks:8x8", "w", 32, 48, 0, Keep.fraction(0.5), new Random(64), null);
        List<Gram> grams = grams(c);
        try {
            WgsefSolution u = LAYERWISE.solve(c.partition(), GroupWeights.UNIFORM, c.k(), c.matrices(), grams);
            WgsefSolution z = LAYERWISE.solve(c.partition(), GroupWeights.SIZE, c.k(), c.matrices(), grams);
            assertEquals(u.result().keptGroups(), z.result().keptGroups());
            assertEquals(u.result().relativeError().getAsDouble(), z.result().relativeError().getAsDouble(), 1e-5);
        } finally {
            close(grams);
        }
    }

    @Test
    void refitSolvesTheNormalEquationsOnTheSupport() {
        Case c = single("columns", "w", 32, 48, 0, Keep.fraction(1.0 / 3), new Random(65), null);
        List<Gram> grams = grams(c);
        try {
            WgsefSolution s = LAYERWISE.solve(c.partition(), GroupWeights.UNIFORM, c.k(), c.matrices(), grams);
            float[] h = grams.get(0).toArray();
            double delta = 0.01 * grams.get(0).meanDiagonal();
            float[] w = c.matrices().get(0);
            float[] wp = s.matrices().get(0);
            BitSet kept = s.result().keptGroups();
            double residual = 0;
            double scale = 0;
            for (int r = 0; r < 32; r++) {
                for (int col = 0; col < 48; col++) {
                    double g = 0;
                    double wh = 0;
                    for (int i = 0; i < 48; i++) {
                        g += (wp[r * 48 + i] - w[r * 48 + i]) * (double) h[i * 48 + col];
                        wh += w[r * 48 + i] * (double) h[i * 48 + col];
                    }
                    g += delta * (wp[r * 48 + col] - w[r * 48 + col]);
                    scale += wh * wh;
                    if (kept.get(col)) {
                        residual += g * g;
                    }
                }
            }
            assertTrue(Math.sqrt(residual / scale) < 1e-5, "gradient on the support " + Math.sqrt(residual / scale));
        } finally {
            close(grams);
        }
    }

    @Test
    void maskedRefitAgreesWithTheExactRefit() {
        Case c = single("nm:2:4", "w", 16, 32, 0, null, new Random(66), null);
        List<Gram> grams = grams(c);
        try (MemberObjective o = new MemberObjective(c.partition().members().get(0), c.matrices().get(0), grams.get(0),
                0.01, 50, 1)) {
            BitSet kept = ExactKProjection.select(c.partition(), 2, c.matrices()).kept();
            float[] exact = SupportRefit.exact(o, kept);
            float[] masked = SupportRefit.masked(o, kept, 3000);
            assertArrayEquals(exact, SupportRefit.refit(o, kept, 0, 300), 0f, "small problems refit exactly");
            double num = 0;
            double den = 0;
            for (int i = 0; i < exact.length; i++) {
                num += (exact[i] - masked[i]) * (exact[i] - masked[i]);
                den += exact[i] * exact[i];
                assertEquals(exact[i] == 0, masked[i] == 0, "same support");
            }
            assertTrue(Math.sqrt(num / den) < 1e-4, "relative difference " + Math.sqrt(num / den));
            assertTrue(o.traces(exact, new float[exact.length])[1] <= o.traces(masked, new float[exact.length])[1] * (1 + 1e-6));
        } finally {
            close(grams);
        }
    }

    @Test
    void sameInputsGiveByteIdenticalOutputs() {
        for (Case c : everyGroupType(new Random(67))) {
            List<Gram> grams = grams(c);
            try {
                WgsefSolution a = LAYERWISE.solve(c.partition(), GroupWeights.UNIFORM, c.k(), c.matrices(), grams);
                WgsefSolution b = LAYERWISE.solve(c.partition(), GroupWeights.UNIFORM, c.k(), c.matrices(), grams);
                for (int m = 0; m < a.matrices().size(); m++) {
                    assertArrayEquals(a.matrices().get(m), b.matrices().get(m), 0f);
                    for (int i = 0; i < a.matrices().get(m).length; i++) {
                        assertEquals(Float.floatToRawIntBits(a.matrices().get(m)[i]), Float.floatToRawIntBits(b.matrices().get(m)[i]));
                    }
                }
                assertEquals(a.result().lambdaPath(), b.result().lambdaPath());
                assertEquals(a.result().keptGroups(), b.result().keptGroups());
            } finally {
                close(grams);
            }
        }
    }

    @Test
    void degenerateInputsAreHandledWithoutNaN() {
        Random rnd = new Random(68);
        GroupPartition p = GroupPartition.of(GroupSpec.parse("columns"), new Matrix("w", 16, 24), 0);
        float[] w = Calibration.gaussian(rnd, 16 * 24);
        for (int r = 0; r < 16; r++) { // three all-zero columns
            w[r * 24 + 2] = 0;
            w[r * 24 + 7] = 0;
            w[r * 24 + 19] = 0;
        }
        float[] lowRank = new float[64 * 24]; // rank 2: H is singular
        for (int i = 0; i < 64; i++) {
            double a = rnd.nextGaussian();
            double b = rnd.nextGaussian();
            for (int col = 0; col < 24; col++) {
                lowRank[i * 24 + col] = (float) (a * Math.sin(col) + b * Math.cos(3 * col));
            }
        }
        List<float[]> inputs = List.of(lowRank, new float[64 * 24]);
        for (float[] x : inputs) {
            for (double damping : new double[] {0.01, 0}) {
                LayerwiseSolver solver = new LayerwiseSolver(LayerwiseSolver.Options.defaults().withDamping(damping));
                try (Gram g = Gram.ofInputs(x, 64, 24)) {
                    for (int k : new int[] {1, 8, 21, 24}) {
                        WgsefSolution s = solver.solve(p, GroupWeights.UNIFORM, k, List.of(w), List.of(g));
                        for (float v : s.matrices().get(0)) {
                            assertTrue(Float.isFinite(v));
                        }
                        double err = s.result().relativeError().getAsDouble();
                        assertTrue(Double.isFinite(err) && err >= 0, "error " + err);
                        for (WgsefResult.Stage st : s.result().lambdaPath()) {
                            assertTrue(Double.isFinite(st.objective()) && Double.isFinite(st.relativeError()));
                        }
                        assertEquals(k, s.result().keptCount());
                        assertEquals(Math.min(k, 21), s.result().nonzeroGroups(), "zero columns are chosen last");
                        if (k == 24) {
                            assertArrayEquals(w, s.matrices().get(0), 0f, "k = m returns W");
                            assertEquals(0, err);
                        }
                    }
                }
            }
        }
    }

    private static void assertRejected(String expectedStart, Runnable r) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, r::run);
        assertTrue(e.getMessage().startsWith(expectedStart), "message '" + e.getMessage() + "'");
    }

    @Test
    void badParametersAreRejectedBeforeWork() {
        GroupPartition p = GroupPartition.of(GroupSpec.parse("columns"), new Matrix("w", 4, 6), 0);
        float[] w = Calibration.gaussian(new Random(69), 24);
        try (Gram g = Gram.ofInputs(Calibration.gaussian(new Random(70), 60), 10, 6); Gram wrong = new Gram(5);
             Gram empty = new Gram(6)) {
            assertRejected("k: level must be >= 1", () -> LAYERWISE.solve(p, GroupWeights.UNIFORM, 0, List.of(w), List.of(g)));
            assertRejected("k: level 7 exceeds the 6 groups", () -> MAGNITUDE.solve(p, GroupWeights.UNIFORM, 7, List.of(w), null));
            assertRejected("'w' (4 x 6): expected 24 values", () -> MAGNITUDE.solve(p, GroupWeights.UNIFORM, 2, List.of(new float[23]), null));
            assertRejected("'w' (4 x 6): calibration statistic has width 5", () -> LAYERWISE.solve(p, GroupWeights.UNIFORM, 2, List.of(w), List.of(wrong)));
            assertRejected("'w' (4 x 6): calibration statistic has no samples", () -> LAYERWISE.solve(p, GroupWeights.UNIFORM, 2, List.of(w), List.of(empty)));
            assertRejected("w: the layerwise solver needs calibration statistics", () -> LAYERWISE.solve(p, GroupWeights.UNIFORM, 2, List.of(w), null));
            float[] nan = w.clone();
            nan[5] = Float.NaN;
            assertRejected("'w' (4 x 6): non-finite weight NaN at index 5", () -> MAGNITUDE.solve(p, GroupWeights.UNIFORM, 2, List.of(nan), null));
            assertRejected("weights: required", () -> MAGNITUDE.solve(p, null, 2, List.of(w), null));
        }
        assertRejected("solver: unknown value 'sparsegpt'", () -> GroupSolver.named("sparsegpt", null));
        assertEquals("layerwise", GroupSolver.named(null, null).name());
        assertEquals("magnitude", GroupSolver.named("Magnitude", null).name());
        LayerwiseSolver.Options d = LayerwiseSolver.Options.defaults();
        assertRejected("damping: must be finite and >= 0", () -> d.withDamping(-1));
        assertRejected("lambdaGrowth: must be finite and > 1", () -> d.withPath(0.01, 1, 5));
        assertRejected("initialLambda: must be finite and > 0", () -> d.withPath(0, 3, 5));
        assertRejected("maxStages: must be >= 1", () -> d.withPath(0.01, 3, 0));
        assertRejected("maxIterations: must be >= 1", () -> d.withIterations(0, 1e-6));
    }

    @Test
    void magnitudeBaselineNeedsNoData() {
        GroupPartition p = GroupPartition.of(GroupSpec.parse("rows"), new Matrix("w", 5, 3), 0);
        float[] w = {1, 0, 0, 0, 3, 0, 2, 0, 0, 0, 0, 0.5f, 0, 0, 2};
        WgsefSolution s = MAGNITUDE.solve(p, GroupWeights.SIZE, 2, List.of(w), null);
        assertArrayEquals(new float[] {0, 0, 0, 0, 3, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0}, s.matrices().get(0));
        assertTrue(s.result().relativeError().isEmpty());
        assertTrue(!s.result().gapHeld(), "rows 2 and 4 tie at the boundary: not strictly separated");
        assertEquals(-1, s.result().bestStage());
        assertEquals(1, w[0], "the input is not modified");
    }
}
