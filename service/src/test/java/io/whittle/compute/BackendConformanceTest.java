package io.whittle.compute;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.whittle.compute.cpu.CpuBackend;
import io.whittle.forward.Evaluation;
import io.whittle.forward.LayerwisePipeline;
import io.whittle.forward.PipelineResult;
import io.whittle.forward.TokenBatch;
import io.whittle.model.ModelSpec.Family;
import io.whittle.model.SyntheticModels;
import io.whittle.tensor.DType;
import io.whittle.tensor.FloatTensor;
import io.whittle.tensor.HostAllocator;
import io.whittle.tensor.Shape;
import io.whittle.tensor.Tensor;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The conformance suite every {@link Backend} passes: each operation against the CPU backend (the reference) on
 * fresh random inputs, with the outputs of the backend under test poisoned (NaN-filled) beforehand so a kernel
 * that skips an element cannot pass, compared by relative error ||out - ref|| / ||ref||. Tolerances: 1e-5 for
 * fp32 operations (different summation orders), {@link #matmulTolerance()} for matrix products (larger when a
 * backend rounds operands to bf16). Sizes straddle kernel tile boundaries (32, 128) and include odd lengths and
 * misaligned views. Each test closes the backend under test, whose allocator fails on leaked tensors.
 *
 * <p>The inputs are fresh per run; the seed is in every assertion message and can be fixed with
 * {@code -Dwhittle.test.seed=N} to reproduce a failure.
 */
public abstract class BackendConformanceTest {

    protected static final double TOL = 1e-5;

    private final List<AutoCloseable> resources = new ArrayList<>();
    protected HostAllocator host;
    protected Backend ref;
    protected Backend dut;
    protected long seed;
    protected Random random;

    /** The backend under test, drawing host memory from {@code host}. */
    protected abstract Backend newBackend(HostAllocator host);

    /** Skips (with the reason) when the backend cannot run here; called before every test. */
    protected void assumeAvailable() {
    }

    /** Relative error allowed for matmul and linear. */
    protected double matmulTolerance() {
        return TOL;
    }

    @BeforeEach
    void open() {
        assumeAvailable();
        String fixed = System.getProperty("whittle.test.seed");
        seed = fixed != null ? Long.parseLong(fixed) : System.nanoTime();
        random = new Random(seed);
        host = HostAllocator.root().newChild("conformance", Long.MAX_VALUE);
        ref = new CpuBackend(host);
        dut = newBackend(host);
    }

    @AfterEach
    void close() throws Exception {
        if (dut == null) {
            return; // skipped
        }
        for (int i = resources.size() - 1; i >= 0; i--) {
            resources.get(i).close();
        }
        resources.clear();
        try {
            dut.close(); // fails on leaked device tensors
        } finally {
            ref.close();
            host.close(); // fails on leaked host tensors
        }
    }

    // ---- helpers ---------------------------------------------------------------------------------------------

    /** One input on both backends (each its own copy, so in-place operations do not interfere). */
    protected record Pair(Tensor ref, Tensor dut, float[] values) {
    }

    private <T extends AutoCloseable> T track(T resource) {
        resources.add(resource);
        return resource;
    }

    protected float[] gaussian(int n, double scale) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = (float) (random.nextGaussian() * scale);
        }
        return a;
    }

    protected Pair pair(Shape shape, float[] values) {
        FloatTensor hr = track(host.allocate(shape, "ref input"));
        FloatTensor hd = track(host.allocate(shape, "dut input"));
        hr.copyFrom(values, 0, 0, values.length);
        hd.copyFrom(values, 0, 0, values.length);
        return new Pair(track(ref.upload(hr)), track(dut.upload(hd)), values);
    }

    protected Pair random(long... dims) {
        Shape s = Shape.of(dims);
        return pair(s, gaussian(Math.toIntExact(s.numel()), 1.0));
    }

    /** An output: zeros on the reference, NaN on the backend under test. */
    protected Pair output(long... dims) {
        Shape s = Shape.of(dims);
        int n = Math.toIntExact(s.numel());
        float[] nan = new float[n];
        java.util.Arrays.fill(nan, Float.NaN);
        FloatTensor hr = track(host.allocate(s, "ref output"));
        FloatTensor hd = track(host.allocate(s, "dut output"));
        hd.copyFrom(nan, 0, 0, n);
        return new Pair(track(ref.upload(hr)), track(dut.upload(hd)), null);
    }

    protected float[] read(Backend b, Tensor t) {
        try (FloatTensor h = b.toHost(t)) {
            return h.toArray();
        }
    }

    /** ||out - ref|| / ||ref||; infinite when the output has a non-finite value where the reference has none. */
    protected static double relErr(float[] out, float[] expected) {
        assertThat(out).hasSameSizeAs(expected);
        double num = 0;
        double den = 0;
        for (int i = 0; i < expected.length; i++) {
            if (!Float.isFinite(out[i]) && Float.isFinite(expected[i])) {
                return Double.POSITIVE_INFINITY;
            }
            double d = (double) out[i] - expected[i];
            num += d * d;
            den += (double) expected[i] * expected[i];
        }
        return den == 0 ? Math.sqrt(num) : Math.sqrt(num / den);
    }

    /** Start rows of sequences of the given lengths packed one after another. */
    protected static int[] startsOf(int[] lengths) {
        int[] starts = new int[lengths.length];
        for (int s = 1; s < lengths.length; s++) {
            starts[s] = starts[s - 1] + lengths[s - 1];
        }
        return starts;
    }

    protected void assertMatches(String what, Pair p, double tol) {
        float[] expected = read(ref, p.ref());
        float[] actual = read(dut, p.dut());
        assertThat(relErr(actual, expected)).as("%s on %s vs cpu (seed %d)", what, dut.name(), seed).isLessThan(tol);
    }

    // ---- memory ----------------------------------------------------------------------------------------------

    @Test
    void allocateIsZeroAndUploadRoundTripsExactly() {
        try (Tensor z = dut.allocate(Shape.of(3, 37))) {
            assertThat(read(dut, z)).containsOnly(0f);
        }
        Pair p = random(5, 41);
        assertThat(read(dut, p.dut())).containsExactly(p.values());
        Tensor slice = p.dut().rowSlice(2, 2);
        float[] expected = java.util.Arrays.copyOfRange(p.values(), 2 * 41, 4 * 41);
        assertThat(read(dut, slice)).containsExactly(expected);
        assertThat(read(dut, p.dut().view(3, Shape.of(7)))).containsExactly(java.util.Arrays.copyOfRange(p.values(), 3, 10));
    }

    @Test
    void copyMovesExactlyTheRange() {
        Pair src = random(100);
        Pair dst = random(90);
        ref.copy(src.ref(), 7, dst.ref(), 11, 53);
        dut.copy(src.dut(), 7, dst.dut(), 11, 53);
        assertThat(read(dut, dst.dut())).containsExactly(read(ref, dst.ref()));
    }

    @Test
    void tensorsOfAnotherBackendAreRejected() {
        try (FloatTensor h = FloatTensor.zeros(2, 2); Tensor other = new CpuBackend().upload(h); Tensor mine = dut.allocate(Shape.of(2, 2))) {
            if (dut instanceof CpuBackend) {
                return; // every CPU tensor is a host tensor; nothing to reject
            }
            assertThatThrownBy(() -> dut.add(other, mine, mine)).isInstanceOf(IllegalArgumentException.class)
                    .hasMessageContaining("another backend");
        }
    }

    // ---- matrix products -------------------------------------------------------------------------------------

    @Test
    void matmulEveryTransposeWithAlphaAndBeta() {
        int[][] sizes = {{37, 29, 53}, {130, 70, 150}};
        for (int[] s : sizes) {
            int m = s[0], k = s[1], n = s[2];
            for (boolean ta : new boolean[] {false, true}) {
                for (boolean tb : new boolean[] {false, true}) {
                    Pair a = ta ? random(k, m) : random(m, k);
                    Pair b = tb ? random(n, k) : random(k, n);
                    Pair c = random(m, n);
                    ref.matmul(a.ref(), ta, b.ref(), tb, 0.5f, 2f, c.ref());
                    dut.matmul(a.dut(), ta, b.dut(), tb, 0.5f, 2f, c.dut());
                    assertMatches("matmul " + m + "x" + k + "x" + n + " ta=" + ta + " tb=" + tb, c, matmulTolerance());
                }
            }
        }
    }

    @Test
    void matmulWithBetaZeroIgnoresPoisonedOutput() {
        Pair a = random(65, 40);
        Pair b = random(40, 129);
        Pair c = output(65, 129);
        ref.matmul(a.ref(), false, b.ref(), false, 1f, 0f, c.ref());
        dut.matmul(a.dut(), false, b.dut(), false, 1f, 0f, c.dut());
        assertMatches("matmul beta=0", c, matmulTolerance());
    }

    @Test
    void matmulWithEmptyInnerDimensionScalesC() {
        Pair a = random(4, 0);
        Pair b = random(0, 6);
        Pair c = random(4, 6);
        ref.matmul(a.ref(), false, b.ref(), false, 1f, 3f, c.ref());
        dut.matmul(a.dut(), false, b.dut(), false, 1f, 3f, c.dut());
        assertMatches("matmul k=0", c, TOL);
    }

    @Test
    void matmulShapeMismatchNamesShapes() {
        Pair a = random(3, 4);
        Pair b = random(5, 6);
        Pair c = random(3, 6);
        assertThatThrownBy(() -> dut.matmul(a.dut(), false, b.dut(), false, 1, 0, c.dut()))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("[3, 4]").hasMessageContaining("[5, 6]");
    }

    @Test
    void linearWithAndWithoutBias() {
        Pair x = random(45, 96);
        Pair w = pair(Shape.of(136, 96), gaussian(136 * 96, 0.1));
        Pair bias = random(136);
        Pair y1 = output(45, 136);
        Pair y2 = output(45, 136);
        ref.linear(x.ref(), w.ref(), null, y1.ref());
        dut.linear(x.dut(), w.dut(), null, y1.dut());
        ref.linear(x.ref(), w.ref(), bias.ref(), y2.ref());
        dut.linear(x.dut(), w.dut(), bias.dut(), y2.dut());
        assertMatches("linear", y1, matmulTolerance());
        assertMatches("linear with bias", y2, matmulTolerance());
    }

    // ---- element-wise and row-wise ---------------------------------------------------------------------------

    @Test
    void rmsNormOverRowsAndHeadsInPlaceAndNot() {
        Pair x = random(23, 200);
        Pair w = pair(Shape.of(200), gaussian(200, 1.0));
        Pair y = output(23, 200);
        ref.rmsNorm(x.ref(), w.ref(), 1e-6, y.ref());
        dut.rmsNorm(x.dut(), w.dut(), 1e-6, y.dut());
        assertMatches("rmsNorm", y, TOL);
        // a row length that is not a multiple of 4 (the scalar kernel)
        Pair xo = random(9, 99);
        Pair wo = pair(Shape.of(99), gaussian(99, 1.0));
        Pair yo = output(9, 99);
        ref.rmsNorm(xo.ref(), wo.ref(), 1e-6, yo.ref());
        dut.rmsNorm(xo.dut(), wo.dut(), 1e-6, yo.dut());
        assertMatches("rmsNorm odd rows", yo, TOL);
        // per-head q/k norm: rows of 16 over a [T, heads * 16] tensor, in place
        Pair q = random(19, 64);
        Pair wh = pair(Shape.of(16), gaussian(16, 1.0));
        Tensor qr = q.ref().reshape(Shape.of(19 * 4, 16));
        Tensor qd = q.dut().reshape(Shape.of(19 * 4, 16));
        ref.rmsNorm(qr, wh.ref(), 1e-5, qr);
        dut.rmsNorm(qd, wh.dut(), 1e-5, qd);
        assertMatches("rmsNorm per head in place", q, TOL);
    }

    @Test
    void rotaryInPlaceWithRepeatedAndGappedPositions() {
        int[] positions = {0, 1, 2, 7, 7, 3, 100, 4095, 5, 0, 1};
        for (int headDim : new int[] {16, 128}) {
            Pair x = random(positions.length, 3L * headDim);
            ref.rotary(x.ref(), 3, headDim, positions, 10000.0);
            dut.rotary(x.dut(), 3, headDim, positions, 10000.0);
            assertMatches("rotary headDim " + headDim, x, TOL);
            // same positions again (the CUDA backend reuses its tables), different theta
            ref.rotary(x.ref(), 3, headDim, positions, 1e6);
            dut.rotary(x.dut(), 3, headDim, positions, 1e6);
            assertMatches("rotary headDim " + headDim + " twice", x, TOL);
        }
    }

    @Test
    void siluMulAndAddAlignedOddAndAliased() {
        for (int n : new int[] {4096, 1001}) {
            Pair g = random(n);
            Pair u = random(n);
            Pair o = output(n);
            ref.siluMul(g.ref(), u.ref(), o.ref());
            dut.siluMul(g.dut(), u.dut(), o.dut());
            assertMatches("siluMul n=" + n, o, TOL);
            Pair s = output(n);
            ref.add(g.ref(), u.ref(), s.ref());
            dut.add(g.dut(), u.dut(), s.dut());
            assertMatches("add n=" + n, s, TOL);
            ref.siluMul(g.ref(), u.ref(), g.ref());
            dut.siluMul(g.dut(), u.dut(), g.dut());
            assertMatches("siluMul in place n=" + n, g, TOL);
            ref.add(u.ref(), g.ref(), u.ref());
            dut.add(u.dut(), g.dut(), u.dut());
            assertMatches("add in place n=" + n, u, TOL);
        }
        // views at an odd offset: not 16-byte aligned
        Pair a = random(1027);
        Pair b = random(1027);
        Pair o = output(1024);
        ref.add(a.ref().view(3, Shape.of(1024)), b.ref().view(1, Shape.of(1024)), o.ref());
        dut.add(a.dut().view(3, Shape.of(1024)), b.dut().view(1, Shape.of(1024)), o.dut());
        assertMatches("add on misaligned views", o, TOL);
    }

    @Test
    void scaleRows() {
        Pair x = random(37, 300);
        float[] s = gaussian(37, 1.0);
        ref.scaleRows(x.ref(), s);
        dut.scaleRows(x.dut(), s);
        assertMatches("scaleRows", x, TOL);
    }

    // ---- attention -------------------------------------------------------------------------------------------

    /** Records the probabilities an observer receives, by (sequence, head). */
    private static final class Recorder implements AttentionObserver {
        final Map<String, float[]> probs = new LinkedHashMap<>();

        @Override
        public boolean wantsProbabilities() {
            return true;
        }

        @Override
        public void probabilities(int sequence, int head, int length, float[] p) {
            probs.put(sequence + "/" + head + "/" + length, p.clone());
        }
    }

    @Test
    void causalGroupedQueryAttentionOverPackedSequences() {
        int[] lengths = {37, 70, 1, 0, 33};
        int[] starts = startsOf(lengths);
        int total = java.util.Arrays.stream(lengths).sum();
        for (int headDim : new int[] {16, 64, 80, 128, 256}) {
            AttentionShape shape = new AttentionShape(4, 2, headDim);
            Pair q = random(total, 4L * headDim);
            Pair k = random(total, 2L * headDim);
            Pair v = random(total, 2L * headDim);
            Pair out = output(total, 4L * headDim);
            Recorder rr = new Recorder();
            Recorder rd = new Recorder();
            ref.attention(q.ref(), k.ref(), v.ref(), out.ref(), shape, starts, lengths, rr);
            dut.attention(q.dut(), k.dut(), v.dut(), out.dut(), shape, starts, lengths, rd);
            assertMatches("attention headDim " + headDim, out, TOL);
            assertThat(rd.probs.keySet()).containsExactlyElementsOf(rr.probs.keySet());
            for (String key : rr.probs.keySet()) {
                assertThat(relErr(rd.probs.get(key), rr.probs.get(key))).as("probabilities %s headDim %d (seed %d)", key, headDim, seed)
                        .isLessThan(TOL);
            }
            // without an observer the output is the same
            Pair out2 = output(total, 4L * headDim);
            ref.attention(q.ref(), k.ref(), v.ref(), out2.ref(), shape, starts, lengths, null);
            dut.attention(q.dut(), k.dut(), v.dut(), out2.dut(), shape, starts, lengths, null);
            assertMatches("attention headDim " + headDim + " without observer", out2, TOL);
        }
    }

    // ---- MoE -------------------------------------------------------------------------------------------------

    @Test
    void routingTopKWithAndWithoutRenormalisation() {
        for (int experts : new int[] {8, 60, 128}) {
            Pair logits = random(45, experts);
            for (boolean renorm : new boolean[] {false, true}) {
                int topK = Math.min(experts, 6);
                Routing r = ref.route(logits.ref(), topK, renorm, 1e-20);
                Routing d = dut.route(logits.dut(), topK, renorm, 1e-20);
                assertThat(d.tokens()).isEqualTo(r.tokens());
                assertThat(d.experts()).as("experts, %d experts renorm=%s (seed %d)", experts, renorm, seed).containsExactly(r.experts());
                assertThat(relErr(d.weights(), r.weights())).as("weights (seed %d)", seed).isLessThan(TOL);
            }
        }
    }

    @Test
    void routingTiesGoToTheLowerExpert() {
        float[] logits = new float[3 * 8];
        for (int t = 0; t < 3; t++) {
            for (int e = 0; e < 8; e++) {
                logits[t * 8 + e] = (e % 3 == t % 3) ? 2f : 0f;
            }
        }
        Pair l = pair(Shape.of(3, 8), logits);
        Routing d = dut.route(l.dut(), 3, true, 1e-20);
        assertThat(d.experts()).containsExactly(ref.route(l.ref(), 3, true, 1e-20).experts());
        assertThat(java.util.Arrays.copyOfRange(d.experts(), 0, 3)).containsExactly(0, 3, 6);
    }

    @Test
    void gatherAndScatterAddRows() {
        Pair src = random(50, 130);
        int[] rows = {49, 0, 3, 3, 17, 48};
        Pair g = output(rows.length, 130);
        ref.gatherRows(src.ref(), rows, g.ref());
        dut.gatherRows(src.dut(), rows, g.dut());
        assertMatches("gatherRows", g, 0.0 + Float.MIN_VALUE);

        int[] distinct = {5, 0, 49, 17};
        Pair upd = random(distinct.length, 130);
        float[] w = gaussian(distinct.length, 1.0);
        Pair dst = random(50, 130);
        ref.scatterAddRows(upd.ref(), distinct, w, dst.ref());
        dut.scatterAddRows(upd.dut(), distinct, w, dst.dut());
        assertMatches("scatterAddRows distinct", dst, TOL);
        int[] repeated = {7, 7, 2, 7};
        ref.scatterAddRows(upd.ref(), repeated, null, dst.ref());
        dut.scatterAddRows(upd.dut(), repeated, null, dst.dut());
        assertMatches("scatterAddRows repeated", dst, TOL);
    }

    @Test
    void gatherAndScatterAddRowsOnVectorRows() {
        Pair src = random(40, 128);
        int[] rows = {39, 0, 3, 17};
        Pair g = output(rows.length, 128);
        ref.gatherRows(src.ref(), rows, g.ref());
        dut.gatherRows(src.dut(), rows, g.dut());
        assertMatches("gatherRows x4", g, Float.MIN_VALUE);
        float[] w = gaussian(rows.length, 1.0);
        Pair dst = random(40, 128);
        ref.scatterAddRows(g.ref(), rows, w, dst.ref());
        dut.scatterAddRows(g.dut(), rows, w, dst.dut());
        assertMatches("scatterAddRows x4", dst, TOL);
        ref.scatterAddRows(g.ref(), rows, null, dst.ref());
        dut.scatterAddRows(g.dut(), rows, null, dst.dut());
        assertMatches("scatterAddRows x4 unweighted", dst, TOL);
    }

    @Test
    void rowIndexOutsideTheSourceIsRejected() {
        if (dut instanceof CpuBackend) {
            return; // the CPU reference fails on the host copy instead; its message is not part of the contract
        }
        Pair src = random(4, 8);
        Pair dst = output(1, 8);
        assertThatThrownBy(() -> dut.gatherRows(src.dut(), new int[] {4}, dst.dut())).isInstanceOf(IndexOutOfBoundsException.class)
                .hasMessageContaining("row index 4").hasMessageContaining("[0, 4)");
    }

    /** ||out - ref|| / ||ref|| of fp64 vectors (||out - ref|| when the reference is all zero). */
    protected static double relErr(double[] out, double[] expected) {
        assertThat(out).hasSameSizeAs(expected);
        double num = 0;
        double den = 0;
        for (int i = 0; i < expected.length; i++) {
            if (!Double.isFinite(out[i]) && Double.isFinite(expected[i])) {
                return Double.POSITIVE_INFINITY;
            }
            double d = out[i] - expected[i];
            num += d * d;
            den += expected[i] * expected[i];
        }
        return den == 0 ? Math.sqrt(num) : Math.sqrt(num / den);
    }

    /**
     * Runs microExpertEnergy on both backends from the same starting accumulators and compares sums and maxima.
     * Returns the backend under test's sums.
     */
    private double[] assertEnergyMatches(String what, Pair x, Pair gate, Pair up, float[] a, double[] sum0, double[] max0) {
        double[] rs = sum0.clone(), rm = max0.clone(), ds = sum0.clone(), dm = max0.clone();
        ref.microExpertEnergy(x.ref(), gate.ref(), up.ref(), a, rs, rm);
        dut.microExpertEnergy(x.dut(), gate.dut(), up.dut(), a, ds, dm);
        assertThat(relErr(ds, rs)).as("%s: sums of phi^2 on %s vs cpu (seed %d)", what, dut.name(), seed).isLessThan(TOL);
        assertThat(relErr(dm, rm)).as("%s: maxima of phi^2 on %s vs cpu (seed %d)", what, dut.name(), seed).isLessThan(TOL);
        for (int j = 0; j < dm.length; j++) {
            assertThat(dm[j]).as("%s: max of channel %d never drops below its start (seed %d)", what, j, seed).isGreaterThanOrEqualTo(max0[j]);
        }
        return ds;
    }

    private float[] routingWeights(int n) {
        float[] a = new float[n];
        for (int t = 0; t < n; t++) {
            a[t] = t % 3 == 1 ? 0f : 0.05f + random.nextFloat(); // every third row unrouted (A = 0)
        }
        return a;
    }

    @Test
    void microExpertEnergyOnOddShapesAccumulatesOntoExistingValues() {
        // rows, hidden, channels straddling the 128-row and 64-channel tiles and the 8-wide k-steps
        for (int[] s : new int[][] {{1, 5, 3}, {37, 19, 70}, {301, 37, 130}}) {
            int n = s[0], d = s[1], f = s[2];
            Pair x = random(n, d);
            Pair gate = pair(Shape.of(f, d), gaussian(f * d, 0.4));
            Pair up = pair(Shape.of(f, d), gaussian(f * d, 0.4));
            float[] a = routingWeights(n);
            a[0] = 0.7f;
            double[] sum0 = new double[f];
            double[] max0 = new double[f];
            String what = "microExpertEnergy " + n + "x" + d + " -> " + f;
            double[] first = assertEnergyMatches(what + " from zero", x, gate, up, a, sum0, max0);
            // onto existing accumulators: sums add, maxima only rise (half the channels start above any phi^2)
            for (int j = 0; j < f; j++) {
                sum0[j] = random.nextDouble();
                max0[j] = j % 2 == 0 ? 1e6 : random.nextDouble() * 1e-3;
            }
            assertEnergyMatches(what + " onto existing values", x, gate, up, a, sum0, max0);
            assertThat(java.util.Arrays.stream(first).anyMatch(v -> v > 0)).as("some channel has energy (seed %d)", seed).isTrue();
        }
    }

    @Test
    void microExpertEnergySkipsUnroutedRowsEvenWhenTheirProductsOverflow() {
        int n = 150, d = 24, f = 65;
        float[] xv = gaussian(n * d, 1.0);
        float[] a = routingWeights(n);
        for (int c = 0; c < d; c++) {
            xv[130 * d + c] = 3e38f; // row 130 (A = 0) overflows its products to infinity
        }
        a[130] = 0f;
        Pair x = pair(Shape.of(n, d), xv);
        Pair gate = pair(Shape.of(f, d), gaussian(f * d, 0.4));
        Pair up = pair(Shape.of(f, d), gaussian(f * d, 0.4));
        double[] sums = assertEnergyMatches("microExpertEnergy with an overflowing unrouted row", x, gate, up, a, new double[f], new double[f]);
        assertThat(java.util.Arrays.stream(sums).allMatch(Double::isFinite)).as("finite sums (seed %d)", seed).isTrue();
        // all rows unrouted: nothing changes, exactly
        double[] s0 = new double[f];
        double[] m0 = new double[f];
        java.util.Arrays.fill(s0, 2.5);
        java.util.Arrays.fill(m0, 0.25);
        double[] ds = s0.clone(), dm = m0.clone();
        dut.microExpertEnergy(x.dut(), gate.dut(), up.dut(), new float[n], ds, dm);
        assertThat(ds).containsExactly(s0);
        assertThat(dm).containsExactly(m0);
    }

    @Test
    void microExpertEnergyOverSeveralChunksAndRowGroups() {
        // 4096 channels: the CPU backend works in chunks of 1024 rows (three here), the CUDA kernel in 16 row groups
        // of 128-row tiles, the first of which covers two tiles
        int n = 2100, d = 12, f = 4096;
        assertThat(MicroExpertEnergy.chunkRows(n, f)).isEqualTo(1024);
        Pair x = random(n, d);
        Pair gate = pair(Shape.of(f, d), gaussian(f * d, 0.3));
        Pair up = pair(Shape.of(f, d), gaussian(f * d, 0.3));
        assertEnergyMatches("microExpertEnergy " + n + "x" + d + " -> " + f, x, gate, up, routingWeights(n), new double[f], new double[f]);
    }

    @Test
    void microExpertEnergyNamesMismatchedShapes() {
        Pair x = random(4, 8);
        Pair gate = random(6, 8);
        Pair up = random(6, 7);
        assertThatThrownBy(() -> dut.microExpertEnergy(x.dut(), gate.dut(), up.dut(), new float[4], new double[6], new double[6]))
                .isInstanceOf(IllegalArgumentException.class).hasMessage("microExpertEnergy shape mismatch: x [4, 8], gate [6, 8], up [6, 7]");
        assertThatThrownBy(() -> dut.microExpertEnergy(x.dut(), gate.dut(), gate.dut(), new float[3], new double[6], new double[6]))
                .isInstanceOf(IllegalArgumentException.class).hasMessage("microExpertEnergy: 3 routing weights for 4 rows");
    }

    // ---- loss ------------------------------------------------------------------------------------------------

    @Test
    void crossEntropyWithIgnoredTargets() {
        int rows = 21, vocab = 1003;
        Pair logits = pair(Shape.of(rows, vocab), gaussian(rows * vocab, 3.0));
        int[] targets = new int[rows];
        for (int i = 0; i < rows; i++) {
            targets[i] = random.nextInt(vocab);
        }
        targets[4] = -1;
        double[] r = ref.crossEntropy(logits.ref(), targets);
        double[] d = dut.crossEntropy(logits.dut(), targets);
        assertThat(Double.isNaN(d[4])).isTrue();
        for (int i = 0; i < rows; i++) {
            if (i != 4) {
                assertThat(d[i]).as("nll row %d (seed %d)", i, seed).isCloseTo(r[i], org.assertj.core.data.Offset.offset(1e-9 * (1 + Math.abs(r[i]))));
            }
        }
    }

    @Test
    void rowAndColumnSumsOfSquaresOnOddShapes() {
        for (long[] dims : new long[][] {{1, 1}, {37, 5}, {3, 1000}, {257, 33}}) {
            Pair x = random(dims);
            double[] rr = ref.rowSumSquares(x.ref());
            double[] dr = dut.rowSumSquares(x.dut());
            double[] rc = ref.columnSumSquares(x.ref());
            double[] dc = dut.columnSumSquares(x.dut());
            assertThat(dr).hasSameSizeAs(rr);
            assertThat(dc).hasSameSizeAs(rc);
            for (int i = 0; i < rr.length; i++) {
                assertThat(dr[i]).as("row %d of %s (seed %d)", i, java.util.Arrays.toString(dims), seed)
                        .isCloseTo(rr[i], org.assertj.core.data.Offset.offset(1e-12 * (1 + rr[i])));
            }
            for (int i = 0; i < rc.length; i++) {
                assertThat(dc[i]).as("column %d of %s (seed %d)", i, java.util.Arrays.toString(dims), seed)
                        .isCloseTo(rc[i], org.assertj.core.data.Offset.offset(1e-12 * (1 + rc[i])));
            }
        }
    }

    // ---- vision tower and visual-token pruning ---------------------------------------------------------------

    @Test
    void layerNormWithAndWithoutBiasInPlaceAndOddRows() {
        for (int n : new int[] {200, 99}) {
            float[] xv = gaussian(23 * n, 3.0);
            for (int i = 0; i < xv.length; i++) {
                xv[i] += 2f; // a mean far from zero: a one-pass variance would lose digits here
            }
            Pair x = pair(Shape.of(23, n), xv);
            Pair w = pair(Shape.of(n), gaussian(n, 1.0));
            Pair b = pair(Shape.of(n), gaussian(n, 1.0));
            Pair y = output(23, n);
            ref.layerNorm(x.ref(), w.ref(), b.ref(), 1e-5, y.ref());
            dut.layerNorm(x.dut(), w.dut(), b.dut(), 1e-5, y.dut());
            assertMatches("layerNorm n=" + n, y, TOL);
            Pair y2 = output(23, n);
            ref.layerNorm(x.ref(), w.ref(), null, 1e-6, y2.ref());
            dut.layerNorm(x.dut(), w.dut(), null, 1e-6, y2.dut());
            assertMatches("layerNorm without bias n=" + n, y2, TOL);
            ref.layerNorm(x.ref(), w.ref(), b.ref(), 1e-5, x.ref());
            dut.layerNorm(x.dut(), w.dut(), b.dut(), 1e-5, x.dut());
            assertMatches("layerNorm in place n=" + n, x, TOL);
        }
        Pair x = random(4, 10);
        Pair w = random(10);
        Pair b = random(9);
        assertThatThrownBy(() -> dut.layerNorm(x.dut(), w.dut(), b.dut(), 1e-5, x.dut())).isInstanceOf(IllegalArgumentException.class)
                .hasMessage("layerNorm shape mismatch: x [4, 10], weight [10], bias [9], y [4, 10]");
    }

    @Test
    void geluAndQuickGeluAlignedOddMisalignedAndInPlace() {
        for (int n : new int[] {4096, 1001}) {
            Pair x = pair(Shape.of(n), gaussian(n, 3.0));
            Pair g = output(n);
            Pair qg = output(n);
            ref.gelu(x.ref(), g.ref());
            dut.gelu(x.dut(), g.dut());
            assertMatches("gelu n=" + n, g, TOL);
            ref.quickGelu(x.ref(), qg.ref());
            dut.quickGelu(x.dut(), qg.dut());
            assertMatches("quickGelu n=" + n, qg, TOL);
            ref.gelu(g.ref(), g.ref());
            dut.gelu(g.dut(), g.dut());
            assertMatches("gelu in place n=" + n, g, TOL);
            ref.quickGelu(qg.ref(), qg.ref());
            dut.quickGelu(qg.dut(), qg.dut());
            assertMatches("quickGelu in place n=" + n, qg, TOL);
        }
        Pair x = pair(Shape.of(1027), gaussian(1027, 3.0));
        Pair o = output(1024);
        ref.gelu(x.ref().view(3, Shape.of(1024)), o.ref());
        dut.gelu(x.dut().view(3, Shape.of(1024)), o.dut());
        assertMatches("gelu on a misaligned view", o, TOL);
        // gelu(1) = Phi(1) = 0.8413447460685429, gelu(-1) = -(1 - Phi(1)); quick_gelu(0) = 0
        Pair known = pair(Shape.of(3), new float[] {1f, -1f, 0f});
        Pair ko = output(3);
        dut.gelu(known.dut(), ko.dut());
        float[] k = read(dut, ko.dut());
        assertThat((double) k[0]).isCloseTo(0.8413447460685429, org.assertj.core.data.Offset.offset(1e-7));
        assertThat((double) k[1]).isCloseTo(-0.15865525393145707, org.assertj.core.data.Offset.offset(1e-7));
        assertThat(k[2]).isEqualTo(0f);
    }

    @Test
    void bidirectionalAttentionOverPackedSequences() {
        int[] lengths = {37, 70, 1, 0, 33};
        int[] starts = startsOf(lengths);
        int total = java.util.Arrays.stream(lengths).sum();
        for (int headDim : new int[] {16, 64, 80, 128, 256}) {
            AttentionShape shape = new AttentionShape(4, 2, headDim);
            Pair q = random(total, 4L * headDim);
            Pair k = random(total, 2L * headDim);
            Pair v = random(total, 2L * headDim);
            Pair out = output(total, 4L * headDim);
            ref.bidirectionalAttention(q.ref(), k.ref(), v.ref(), out.ref(), shape, starts, lengths);
            dut.bidirectionalAttention(q.dut(), k.dut(), v.dut(), out.dut(), shape, starts, lengths);
            assertMatches("bidirectionalAttention headDim " + headDim, out, TOL);
        }
        // the first row sees the whole sequence: its output differs from causal attention's (its own value row)
        AttentionShape shape = new AttentionShape(2, 2, 16);
        Pair q = random(20, 32);
        Pair k = random(20, 32);
        Pair v = random(20, 32);
        Pair causal = output(20, 32);
        Pair bidir = output(20, 32);
        dut.attention(q.dut(), k.dut(), v.dut(), causal.dut(), shape, new int[] {0}, new int[] {20}, null);
        dut.bidirectionalAttention(q.dut(), k.dut(), v.dut(), bidir.dut(), shape, new int[] {0}, new int[] {20});
        float[] c = read(dut, causal.dut());
        float[] b = read(dut, bidir.dut());
        assertThat(java.util.Arrays.copyOfRange(c, 0, 16)).containsExactly(java.util.Arrays.copyOfRange(v.values(), 0, 16));
        assertThat(relErr(java.util.Arrays.copyOfRange(b, 0, 16), java.util.Arrays.copyOfRange(c, 0, 16))).isGreaterThan(1e-3);
    }

    @Test
    void copyBlockCopiesExactlyTheBlockAndChecksBounds() {
        int[][] cases = {{6, 10, 5, 7, 2, 3, 1, 4, 3, 3}, {70, 150, 80, 140, 3, 20, 10, 5, 65, 129}, {4, 8, 4, 8, 0, 0, 0, 0, 4, 8}};
        for (int[] c : cases) {
            Pair src = random(c[0], c[1]);
            Pair dst = random(c[2], c[3]); // elements outside the block must keep their values
            ref.copyBlock(src.ref(), c[4], c[5], dst.ref(), c[6], c[7], c[8], c[9]);
            dut.copyBlock(src.dut(), c[4], c[5], dst.dut(), c[6], c[7], c[8], c[9]);
            assertThat(read(dut, dst.dut())).as("copyBlock %s (seed %d)", java.util.Arrays.toString(c), seed)
                    .containsExactly(read(ref, dst.ref()));
        }
        Pair s = random(6, 10);
        Pair d = random(5, 7);
        assertThatThrownBy(() -> dut.copyBlock(s.dut(), 4, 0, d.dut(), 0, 0, 3, 2)).isInstanceOf(IllegalArgumentException.class)
                .hasMessage("copyBlock: 3x2 block from (4, 0) of [6, 10] to (0, 0) of [5, 7] is out of bounds");
        // within one tensor: disjoint column blocks of the same rows, and a block moved down past its own rows
        Pair m = random(8, 12);
        ref.copyBlock(m.ref(), 1, 0, m.ref(), 1, 6, 5, 6);
        dut.copyBlock(m.dut(), 1, 0, m.dut(), 1, 6, 5, 6);
        ref.copyBlock(m.ref(), 0, 2, m.ref(), 4, 3, 4, 5);
        dut.copyBlock(m.dut(), 0, 2, m.dut(), 4, 3, 4, 5);
        assertThat(read(dut, m.dut())).as("copyBlock within one tensor (seed %d)", seed).containsExactly(read(ref, m.ref()));
        if (!(dut instanceof CpuBackend)) {
            // a parallel copy of overlapping blocks would race: rejected (the CPU copies row by row instead)
            assertThatThrownBy(() -> dut.copyBlock(m.dut(), 0, 0, m.dut(), 1, 1, 4, 4)).isInstanceOf(IllegalArgumentException.class)
                    .hasMessage("copyBlock: the 4x4 blocks at (0, 0) of [8, 12] and (1, 1) of [8, 12] overlap in memory");
            // the same rows and columns in a view that starts one row later overlap too
            Tensor below = m.dut().view(12, Shape.of(7, 12));
            assertThatThrownBy(() -> dut.copyBlock(m.dut(), 2, 3, below, 1, 3, 2, 2)).isInstanceOf(IllegalArgumentException.class)
                    .hasMessageContaining("overlap in memory");
        }
    }

    /** Runs visualMaskedAttention on both backends and compares outputs and, when observed, every head's weights. */
    private void assertVisualMaskedMatches(String what, AttentionShape shape, VisualLayout layout, int t, boolean[] keep,
                                           boolean renormalize, boolean observe) {
        Pair q = random(t, (long) shape.heads() * shape.headDim());
        Pair k = random(t, (long) shape.kvHeads() * shape.headDim());
        Pair v = random(t, (long) shape.kvHeads() * shape.headDim());
        Pair out = output(t, (long) shape.heads() * shape.headDim());
        Recorder rr = observe ? new Recorder() : null;
        Recorder rd = observe ? new Recorder() : null;
        ref.visualMaskedAttention(q.ref(), k.ref(), v.ref(), out.ref(), shape, layout, keep, renormalize, rr);
        dut.visualMaskedAttention(q.dut(), k.dut(), v.dut(), out.dut(), shape, layout, keep, renormalize, rd);
        assertMatches(what, out, TOL);
        if (observe) {
            assertThat(rd.probs.keySet()).as(what).containsExactlyElementsOf(rr.probs.keySet());
            for (String key : rr.probs.keySet()) {
                assertThat(relErr(rd.probs.get(key), rr.probs.get(key))).as("%s: weights %s (seed %d)", what, key, seed).isLessThan(TOL);
            }
        }
    }

    @Test
    void visualMaskedAttentionInBothModesWithObservedWeights() {
        boolean[] keep = {true, false, true, false}; // kv head 1 serves a kept and a pruned head
        // tiles of 32 queries that mix prefix, visual and text rows; then a grid with all-visual tiles
        int[][] layouts = {{5, 6, 7, 3, 20}, {0, 12, 8, 3, 5}, {2, 12, 8, 1, 5}, {4, 5, 9, 13, 3}};
        for (int[] l : layouts) {
            VisualLayout layout = VisualLayout.ofWindow(l[0], l[1], l[2], l[3]);
            int t = layout.visualEnd() + l[4];
            for (boolean renorm : new boolean[] {true, false}) {
                assertVisualMaskedMatches("visualMaskedAttention " + layout + " renormalize=" + renorm, new AttentionShape(4, 2, 16), layout,
                        t, keep, renorm, true);
            }
        }
        VisualLayout layout = VisualLayout.ofWindow(3, 6, 6, 3);
        assertVisualMaskedMatches("visualMaskedAttention headDim 128 without observer", new AttentionShape(4, 4, 128), layout, 45,
                new boolean[] {false, true, true, false}, false, false);
        assertVisualMaskedMatches("visualMaskedAttention, every head kept", new AttentionShape(2, 1, 64), layout, 45,
                new boolean[] {true, true}, true, true);
    }

    @Test
    void visualPrunedAttentionEqualsTheReferenceAndNeverReadsPrunedVisualColumns() {
        AttentionShape shape = new AttentionShape(6, 3, 16); // kv head g serves query heads 2g, 2g+1
        boolean[] keep = {true, true, false, false, true, false};
        int gridRows = 12, gridCols = 8, text = 9;
        for (int prefix : new int[] {0, 4}) {
            for (int window : new int[] {1, 3, 13}) {
                VisualLayout layout = VisualLayout.ofWindow(prefix, gridRows, gridCols, window);
                int t = layout.visualEnd() + text;
                float[] qv = gaussian(t * 96, 1.0), kv = gaussian(t * 48, 1.0), vv = gaussian(t * 48, 1.0);
                // poison what must never be read: the visual q rows of the pruned heads 2, 3, 5, and the visual k/v rows
                // of kv head 1 (both of whose query heads are pruned)
                for (int i = prefix; i < layout.visualEnd(); i++) {
                    for (int h : new int[] {2, 3, 5}) {
                        java.util.Arrays.fill(qv, i * 96 + h * 16, i * 96 + h * 16 + 16, Float.NaN);
                    }
                    java.util.Arrays.fill(kv, i * 48 + 16, i * 48 + 32, Float.NaN);
                    java.util.Arrays.fill(vv, i * 48 + 16, i * 48 + 32, Float.NaN);
                }
                Pair q = pair(Shape.of(t, 96), qv);
                Pair k = pair(Shape.of(t, 48), kv);
                Pair v = pair(Shape.of(t, 48), vv);
                Pair out = output(t, 96);
                ref.visualPrunedAttention(q.ref(), k.ref(), v.ref(), out.ref(), shape, layout, keep);
                dut.visualPrunedAttention(q.dut(), k.dut(), v.dut(), out.dut(), shape, layout, keep);
                assertMatches("visualPrunedAttention " + layout, out, TOL);
                float[] o = read(dut, out.dut());
                for (int i = prefix; i < layout.visualEnd(); i++) {
                    for (int c = 2 * 16; c < 4 * 16; c++) {
                        assertThat(o[i * 96 + c]).as("pruned visual row %d column %d", i, c).isEqualTo(0f);
                    }
                }
            }
        }
    }

    @Test
    void visualOpsRejectMismatchedLayouts() {
        AttentionShape shape = new AttentionShape(2, 2, 4);
        Pair q = random(10, 8);
        Pair out = output(10, 8);
        VisualLayout tooLong = new VisualLayout(2, 3, 3, 1);
        assertThatThrownBy(() -> dut.visualPrunedAttention(q.dut(), q.dut(), q.dut(), out.dut(), shape, tooLong, new boolean[2]))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessage("visualPrunedAttention: the visual tokens [2, 11) do not fit a sequence of 10 rows");
        VisualLayout ok = new VisualLayout(1, 3, 3, 1);
        assertThatThrownBy(() -> dut.visualMaskedAttention(q.dut(), q.dut(), q.dut(), out.dut(), shape, ok, new boolean[3], true, null))
                .isInstanceOf(IllegalArgumentException.class).hasMessage("visualMaskedAttention: 3 head flags for 2 heads");
    }

    // ---- whole model -----------------------------------------------------------------------------------------

    /** Every operation together: a small synthetic MoE model (gated shared expert, GQA) evaluated end to end. */
    @Test
    void syntheticMoeModelGivesTheSamePerplexity(@TempDir Path dir) {
        var request = new SyntheticModels.Request(Family.QWEN2_MOE, 2, 64, 96, 8, 2, 32, 48, 4, 2, 300, seed, DType.BF16, 1);
        Path model = dir.resolve("model");
        SyntheticModels.write(request, model);
        List<int[]> seqs = new ArrayList<>();
        for (int s = 0; s < 3; s++) {
            int[] ids = new int[20 + 17 * s];
            for (int i = 0; i < ids.length; i++) {
                ids[i] = random.nextInt(300);
            }
            seqs.add(ids);
        }
        TokenBatch batch = new TokenBatch(seqs);
        PipelineResult r = Evaluation.evaluate(model, batch, ref, host, LayerwisePipeline.Listener.NONE);
        PipelineResult d = Evaluation.evaluate(model, batch, dut, host, LayerwisePipeline.Listener.NONE);
        double[] a = d.perSequenceMeanNll();
        double[] e = r.perSequenceMeanNll();
        for (int s = 0; s < e.length; s++) {
            assertThat(Math.abs(a[s] - e[s]) / Math.abs(e[s])).as("mean NLL of sequence %d (seed %d)", s, seed)
                    .isLessThan(Math.max(1e-5, matmulTolerance()));
        }
    }
}
