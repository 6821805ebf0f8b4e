package io.whittle.compute.cpu;

import static io.whittle.testing.Numerics.relErr;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.whittle.compute.AttentionObserver;
import io.whittle.compute.AttentionShape;
import io.whittle.compute.Routing;
import io.whittle.tensor.FloatTensor;
import io.whittle.tensor.Shape;
import io.whittle.testing.Numerics;
import java.util.Random;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * Every CPU backend operation against a plain fp64 loop on fresh random inputs, compared by relative error
 * ||out - ref|| / ||ref||. Tolerance 1e-5 (fp32 against fp64) unless stated.
 */
class CpuBackendTest {

    private static final double TOL = 1e-5;
    private final CpuBackend cpu = new CpuBackend();
    private final Random random = new Random(42);

    @AfterEach
    void close() {
        cpu.close();
    }

    private float[] rand(int n) {
        return Numerics.gaussian(random, n);
    }


    @Test
    void matmulAllTransposes() {
        int m = 37, k = 29, n = 53;
        for (boolean ta : new boolean[] {false, true}) {
            for (boolean tb : new boolean[] {false, true}) {
                float[] a = rand(m * k), b = rand(k * n), c0 = rand(m * n);
                try (FloatTensor ta_ = FloatTensor.of(ta ? Shape.of(k, m) : Shape.of(m, k), a);
                     FloatTensor tb_ = FloatTensor.of(tb ? Shape.of(n, k) : Shape.of(k, n), b);
                     FloatTensor tc = FloatTensor.of(Shape.of(m, n), c0)) {
                    cpu.matmul(ta_, ta, tb_, tb, 0.5f, 2f, tc);
                    double[] ref = new double[m * n];
                    for (int i = 0; i < m; i++) {
                        for (int j = 0; j < n; j++) {
                            double s = 0;
                            for (int p = 0; p < k; p++) {
                                double av = ta ? a[p * m + i] : a[i * k + p];
                                double bv = tb ? b[j * k + p] : b[p * n + j];
                                s += av * bv;
                            }
                            ref[i * n + j] = 0.5 * s + 2 * c0[i * n + j];
                        }
                    }
                    assertThat(relErr(tc.toArray(), ref)).as("ta=%s tb=%s", ta, tb).isLessThan(TOL);
                }
            }
        }
    }

    @Test
    void matmulShapeMismatchNamesShapes() {
        try (FloatTensor a = FloatTensor.zeros(3, 4); FloatTensor b = FloatTensor.zeros(5, 6); FloatTensor c = FloatTensor.zeros(3, 6)) {
            assertThatThrownBy(() -> cpu.matmul(a, false, b, false, 1, 0, c))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("[3, 4]").hasMessageContaining("[5, 6]");
        }
    }

    @Test
    void linearWithBias() {
        int t = 9, in = 33, out = 17;
        float[] x = rand(t * in), w = rand(out * in), b = rand(out);
        try (FloatTensor tx = FloatTensor.of(Shape.of(t, in), x); FloatTensor tw = FloatTensor.of(Shape.of(out, in), w);
             FloatTensor tb = FloatTensor.of(Shape.of(out), b); FloatTensor ty = FloatTensor.zeros(t, out)) {
            cpu.linear(tx, tw, tb, ty);
            double[] ref = new double[t * out];
            for (int i = 0; i < t; i++) {
                for (int o = 0; o < out; o++) {
                    double s = b[o];
                    for (int p = 0; p < in; p++) {
                        s += (double) x[i * in + p] * w[o * in + p];
                    }
                    ref[i * out + o] = s;
                }
            }
            assertThat(relErr(ty.toArray(), ref)).isLessThan(TOL);
        }
    }

    @Test
    void rmsNormMatchesFormulaAndHandCase() {
        try (FloatTensor x = FloatTensor.of(Shape.of(1, 4), new float[] {1, 2, 3, 4});
             FloatTensor w = FloatTensor.of(Shape.of(4), new float[] {1, 1, 2, 0.5f});
             FloatTensor y = FloatTensor.zeros(1, 4)) {
            cpu.rmsNorm(x, w, 0.0, y);
            double rms = Math.sqrt((1 + 4 + 9 + 16) / 4.0); // 2.7386...
            assertThat(y.toArray()).containsExactly(new float[] {(float) (1 / rms), (float) (2 / rms), (float) (2 * 3 / rms),
                    (float) (0.5 * 4 / rms)}, org.assertj.core.data.Offset.offset(1e-6f));
        }
        int rows = 13, n = 96;
        float[] x = rand(rows * n), w = rand(n);
        try (FloatTensor tx = FloatTensor.of(Shape.of(rows, n), x); FloatTensor tw = FloatTensor.of(Shape.of(n), w)) {
            cpu.rmsNorm(tx, tw, 1e-5, tx); // in place
            double[] ref = new double[rows * n];
            for (int r = 0; r < rows; r++) {
                double ss = 0;
                for (int j = 0; j < n; j++) {
                    ss += (double) x[r * n + j] * x[r * n + j];
                }
                double inv = 1 / Math.sqrt(ss / n + 1e-5);
                for (int j = 0; j < n; j++) {
                    ref[r * n + j] = w[j] * x[r * n + j] * inv;
                }
            }
            assertThat(relErr(tx.toArray(), ref)).isLessThan(TOL);
        }
    }

    @Test
    void rotaryIsRotateHalfAndIdentityAtPositionZero() {
        int heads = 3, hd = 8, t = 5;
        float[] x = rand(t * heads * hd);
        int[] pos = {0, 1, 7, 100, 2047};
        try (FloatTensor tx = FloatTensor.of(Shape.of(t, heads * hd), x)) {
            cpu.rotary(tx, heads, hd, pos, 10000.0);
            float[] out = tx.toArray();
            double[] ref = new double[x.length];
            for (int i = 0; i < t; i++) {
                for (int h = 0; h < heads; h++) {
                    for (int j = 0; j < hd / 2; j++) {
                        double ang = pos[i] / Math.pow(10000.0, 2.0 * j / hd);
                        int a = i * heads * hd + h * hd + j, b = a + hd / 2;
                        ref[a] = x[a] * Math.cos(ang) - x[b] * Math.sin(ang);
                        ref[b] = x[b] * Math.cos(ang) + x[a] * Math.sin(ang);
                    }
                }
            }
            assertThat(relErr(out, ref)).isLessThan(1e-5);
            for (int j = 0; j < heads * hd; j++) {
                assertThat(out[j]).as("position 0 is the identity").isEqualTo(x[j]);
            }
        }
    }

    @Test
    void elementwiseOps() {
        int n = 1_100_001; // above the parallel threshold (2^20), not a multiple of the chunk
        float[] a = rand(n), b = rand(n);
        try (FloatTensor ta = FloatTensor.of(Shape.of(n), a); FloatTensor tb = FloatTensor.of(Shape.of(n), b);
             FloatTensor out = FloatTensor.zeros(n)) {
            cpu.siluMul(ta, tb, out);
            double[] ref = new double[n];
            for (int i = 0; i < n; i++) {
                ref[i] = a[i] / (1 + Math.exp(-a[i])) * b[i];
            }
            assertThat(relErr(out.toArray(), ref)).isLessThan(TOL);
            cpu.add(ta, tb, ta);
            for (int i = 0; i < n; i++) {
                ref[i] = (double) a[i] + b[i];
            }
            assertThat(relErr(ta.toArray(), ref)).isLessThan(1e-7);
        }
        try (FloatTensor x = FloatTensor.of(Shape.of(2, 3), new float[] {1, 2, 3, 4, 5, 6})) {
            cpu.scaleRows(x, new float[] {2, -1});
            assertThat(x.toArray()).containsExactly(2, 4, 6, -4, -5, -6);
        }
    }

    /** Naive causal GQA attention in fp64 over packed sequences. */
    static double[] naiveAttention(float[] q, float[] k, float[] v, int heads, int kvHeads, int hd, int[] starts, int[] lengths) {
        int qw = heads * hd, kw = kvHeads * hd;
        int rows = q.length / qw;
        double[] out = new double[rows * qw];
        for (int s = 0; s < starts.length; s++) {
            for (int h = 0; h < heads; h++) {
                int g = h / (heads / kvHeads);
                for (int i = 0; i < lengths[s]; i++) {
                    int qi = starts[s] + i;
                    double[] sc = new double[i + 1];
                    double max = Double.NEGATIVE_INFINITY;
                    for (int j = 0; j <= i; j++) {
                        int kj = starts[s] + j;
                        double d = 0;
                        for (int c = 0; c < hd; c++) {
                            d += (double) q[qi * qw + h * hd + c] * k[kj * kw + g * hd + c];
                        }
                        sc[j] = d / Math.sqrt(hd);
                        max = Math.max(max, sc[j]);
                    }
                    double sum = 0;
                    for (int j = 0; j <= i; j++) {
                        sc[j] = Math.exp(sc[j] - max);
                        sum += sc[j];
                    }
                    for (int j = 0; j <= i; j++) {
                        int vj = starts[s] + j;
                        for (int c = 0; c < hd; c++) {
                            out[qi * qw + h * hd + c] += sc[j] / sum * v[vj * kw + g * hd + c];
                        }
                    }
                }
            }
        }
        return out;
    }

    @Test
    void attentionPackedSequencesWithGqa() {
        int heads = 6, kvHeads = 2, hd = 8;
        int[] starts = {0, 7, 19};
        int[] lengths = {7, 12, 1};
        int rows = 20;
        float[] q = rand(rows * heads * hd), k = rand(rows * kvHeads * hd), v = rand(rows * kvHeads * hd);
        try (FloatTensor tq = FloatTensor.of(Shape.of(rows, heads * hd), q); FloatTensor tk = FloatTensor.of(Shape.of(rows, kvHeads * hd), k);
             FloatTensor tv = FloatTensor.of(Shape.of(rows, kvHeads * hd), v); FloatTensor to = FloatTensor.zeros(rows, heads * hd)) {
            int[] calls = {0};
            cpu.attention(tq, tk, tv, to, new AttentionShape(heads, kvHeads, hd), starts, lengths, new AttentionObserver() {
                @Override
                public boolean wantsProbabilities() {
                    return true;
                }

                @Override
                public void probabilities(int sequence, int head, int length, float[] probs) {
                    calls[0]++;
                    for (int i = 0; i < length; i++) {
                        double sum = 0;
                        for (int j = 0; j < length; j++) {
                            if (j > i) {
                                assertThat(probs[i * length + j]).isZero();
                            }
                            sum += probs[i * length + j];
                        }
                        assertThat(sum).isCloseTo(1.0, org.assertj.core.data.Offset.offset(1e-5));
                    }
                }
            });
            assertThat(calls[0]).isEqualTo(3 * heads);
            assertThat(relErr(to.toArray(), naiveAttention(q, k, v, heads, kvHeads, hd, starts, lengths))).isLessThan(TOL);
        }
    }

    @Test
    void gqaEqualsMhaWithRepeatedKeyValueHeads() {
        int heads = 4, kvHeads = 2, hd = 4, rows = 9;
        float[] q = rand(rows * heads * hd), k = rand(rows * kvHeads * hd), v = rand(rows * kvHeads * hd);
        // repeat_interleave on the head axis: query head h reads KV head h / 2
        float[] kRep = new float[rows * heads * hd], vRep = new float[rows * heads * hd];
        for (int r = 0; r < rows; r++) {
            for (int h = 0; h < heads; h++) {
                System.arraycopy(k, r * kvHeads * hd + (h / 2) * hd, kRep, r * heads * hd + h * hd, hd);
                System.arraycopy(v, r * kvHeads * hd + (h / 2) * hd, vRep, r * heads * hd + h * hd, hd);
            }
        }
        int[] starts = {0};
        int[] lengths = {rows};
        try (FloatTensor tq = FloatTensor.of(Shape.of(rows, heads * hd), q);
             FloatTensor tk = FloatTensor.of(Shape.of(rows, kvHeads * hd), k); FloatTensor tv = FloatTensor.of(Shape.of(rows, kvHeads * hd), v);
             FloatTensor tkr = FloatTensor.of(Shape.of(rows, heads * hd), kRep); FloatTensor tvr = FloatTensor.of(Shape.of(rows, heads * hd), vRep);
             FloatTensor o1 = FloatTensor.zeros(rows, heads * hd); FloatTensor o2 = FloatTensor.zeros(rows, heads * hd)) {
            cpu.attention(tq, tk, tv, o1, new AttentionShape(heads, kvHeads, hd), starts, lengths, null);
            cpu.attention(tq, tkr, tvr, o2, new AttentionShape(heads, heads, hd), starts, lengths, null);
            assertThat(o1.toArray()).containsExactly(o2.toArray());
        }
    }

    @Test
    void attentionHandCase() {
        // one head, head_dim 2, two tokens: token 0 attends only to itself; token 1 to both with softmax(q1.k / sqrt 2)
        float[] q = {1, 0, 0, 1};
        float[] k = {1, 0, 0, 2};
        float[] v = {10, 20, 30, 40};
        try (FloatTensor tq = FloatTensor.of(Shape.of(2, 2), q); FloatTensor tk = FloatTensor.of(Shape.of(2, 2), k);
             FloatTensor tv = FloatTensor.of(Shape.of(2, 2), v); FloatTensor to = FloatTensor.zeros(2, 2)) {
            cpu.attention(tq, tk, tv, to, new AttentionShape(1, 1, 2), new int[] {0}, new int[] {2}, null);
            double s0 = 0 / Math.sqrt(2), s1 = 2 / Math.sqrt(2);
            double p0 = Math.exp(s0) / (Math.exp(s0) + Math.exp(s1));
            assertThat(to.toArray()).containsExactly(new float[] {10, 20, (float) (p0 * 10 + (1 - p0) * 30),
                    (float) (p0 * 20 + (1 - p0) * 40)}, org.assertj.core.data.Offset.offset(1e-5f));
        }
    }

    @Test
    void routingTopKTiesAndRenormalisation() {
        // token 0: logits favour expert 2 then a tie between 0 and 3 (lower index wins); token 1: uniform -> 0, 1
        float[] logits = {1f, 0f, 3f, 1f, 0f, 0f, 0f, 0f};
        try (FloatTensor t = FloatTensor.of(Shape.of(2, 4), logits)) {
            Routing plain = cpu.route(t, 2, false, 0);
            assertThat(plain.experts()).containsExactly(2, 0, 0, 1);
            double z = Math.exp(1) * 2 + Math.exp(3) + 1;
            assertThat(plain.weights()[0]).isCloseTo((float) (Math.exp(3) / z), org.assertj.core.data.Offset.offset(1e-6f));
            assertThat(plain.weights()[1]).isCloseTo((float) (Math.exp(1) / z), org.assertj.core.data.Offset.offset(1e-6f));
            assertThat(plain.weights()[2]).isCloseTo(0.25f, org.assertj.core.data.Offset.offset(1e-6f));
            Routing renorm = cpu.route(t, 2, true, 0);
            assertThat(renorm.weights()[0] + renorm.weights()[1]).isCloseTo(1f, org.assertj.core.data.Offset.offset(1e-6f));
            assertThat(renorm.weights()[0]).isCloseTo((float) (Math.exp(3) / (Math.exp(3) + Math.exp(1))),
                    org.assertj.core.data.Offset.offset(1e-6f));
            assertThat(renorm.byExpert()[0].rows()).containsExactly(0, 1);
            assertThat(renorm.byExpert()[3].count()).isZero();
        }
    }

    @Test
    void gatherScatterAndCrossEntropy() {
        try (FloatTensor src = FloatTensor.of(Shape.of(3, 2), new float[] {1, 2, 3, 4, 5, 6}); FloatTensor g = FloatTensor.zeros(2, 2);
             FloatTensor dst = FloatTensor.of(Shape.of(3, 2), new float[] {1, 1, 1, 1, 1, 1})) {
            cpu.gatherRows(src, new int[] {2, 0}, g);
            assertThat(g.toArray()).containsExactly(5, 6, 1, 2);
            cpu.scatterAddRows(g, new int[] {1, 1}, new float[] {2, 0.5f}, dst);
            assertThat(dst.toArray()).containsExactly(1, 1, 1 + 10 + 0.5f, 1 + 12 + 1, 1, 1);
        }
        int rows = 4, vocab = 1000;
        float[] l = rand(rows * vocab);
        int[] targets = {3, 999, -1, 0};
        try (FloatTensor t = FloatTensor.of(Shape.of(rows, vocab), l)) {
            double[] nll = cpu.crossEntropy(t, targets);
            for (int r = 0; r < rows; r++) {
                if (targets[r] < 0) {
                    assertThat(nll[r]).isNaN();
                    continue;
                }
                double s = 0;
                for (int j = 0; j < vocab; j++) {
                    s += Math.exp(l[r * vocab + j]);
                }
                assertThat(nll[r]).isCloseTo(Math.log(s) - l[r * vocab + targets[r]], org.assertj.core.data.Offset.offset(1e-9));
            }
        }
    }

    @Test
    void rowAndColumnSumsOfSquaresAgainstFp64() {
        int rows = 13, cols = 7;
        float[] x = rand(rows * cols);
        try (FloatTensor t = FloatTensor.of(Shape.of(rows, cols), x)) {
            double[] r = cpu.rowSumSquares(t);
            double[] c = cpu.columnSumSquares(t);
            for (int i = 0; i < rows; i++) {
                double s = 0;
                for (int j = 0; j < cols; j++) {
                    s += (double) x[i * cols + j] * x[i * cols + j];
                }
                assertThat(r[i]).isCloseTo(s, org.assertj.core.data.Offset.offset(1e-12));
            }
            for (int j = 0; j < cols; j++) {
                double s = 0;
                for (int i = 0; i < rows; i++) {
                    s += (double) x[i * cols + j] * x[i * cols + j];
                }
                assertThat(c[j]).isCloseTo(s, org.assertj.core.data.Offset.offset(1e-12));
            }
        }
    }
}
