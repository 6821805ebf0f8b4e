package io.whittle.compute.cpu;

import static io.whittle.testing.Numerics.relErr;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.whittle.compute.AttentionObserver;
import io.whittle.compute.AttentionShape;
import io.whittle.compute.VisualLayout;
import io.whittle.tensor.FloatTensor;
import io.whittle.tensor.Shape;
import io.whittle.testing.Numerics;
import java.util.Random;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * The CPU backend's vision and visual-pruning operations against plain fp64 loops written from the definitions
 * (grid coordinates, causal rule, post-softmax zeroing), on fresh random inputs; relative error
 * ||out - ref|| / ||ref|| below 1e-5 unless stated.
 */
class CpuBackendVisualOpsTest {

    private static final double TOL = 1e-5;
    private final CpuBackend cpu = new CpuBackend();
    private final Random random = new Random(7);

    @AfterEach
    void close() {
        cpu.close();
    }

    private float[] rand(int n) {
        return Numerics.gaussian(random, n);
    }


    @Test
    void erfMatchesTabulatedValues() {
        // Abramowitz & Stegun table 7.1 / high-precision values
        assertThat(Erf.erf(0.0)).isEqualTo(0.0);
        assertThat(Erf.erf(0.5)).isCloseTo(0.5204998778130465, org.assertj.core.data.Offset.offset(1e-14));
        assertThat(Erf.erf(1.0)).isCloseTo(0.8427007929497149, org.assertj.core.data.Offset.offset(1e-14));
        assertThat(Erf.erf(-2.0)).isCloseTo(-0.9953222650189527, org.assertj.core.data.Offset.offset(1e-14));
        assertThat(Erf.erf(3.0)).isCloseTo(0.9999779095030014, org.assertj.core.data.Offset.offset(1e-14));
        assertThat(Erf.erf(4.5)).isCloseTo(0.9999999998033839, org.assertj.core.data.Offset.offset(1e-14));
        assertThat(Erf.erf(7.0)).isEqualTo(1.0);
    }

    @Test
    void layerNormAgainstFp64() {
        int rows = 9, n = 70;
        float[] x = rand(rows * n), w = rand(n), b = rand(n);
        for (int i = 0; i < x.length; i++) {
            x[i] = x[i] * 3 + 2; // a mean far from zero
        }
        double[] ref = new double[x.length];
        for (int r = 0; r < rows; r++) {
            double mean = 0, var = 0;
            for (int j = 0; j < n; j++) {
                mean += x[r * n + j];
            }
            mean /= n;
            for (int j = 0; j < n; j++) {
                var += Math.pow(x[r * n + j] - mean, 2);
            }
            var /= n;
            for (int j = 0; j < n; j++) {
                ref[r * n + j] = (x[r * n + j] - mean) / Math.sqrt(var + 1e-5) * w[j] + b[j];
            }
        }
        try (FloatTensor tx = FloatTensor.of(Shape.of(rows, n), x); FloatTensor tw = FloatTensor.of(Shape.of(n), w);
             FloatTensor tb = FloatTensor.of(Shape.of(n), b); FloatTensor ty = FloatTensor.zeros(rows, n)) {
            cpu.layerNorm(tx, tw, tb, 1e-5, ty);
            assertThat(relErr(ty.toArray(), ref)).isLessThan(TOL);
            cpu.layerNorm(tx, tw, tb, 1e-5, tx); // in place
            assertThat(relErr(tx.toArray(), ref)).isLessThan(TOL);
        }
    }

    @Test
    void geluAndQuickGeluAgainstFp64() {
        float[] x = rand(5000);
        double[] gelu = new double[x.length], quick = new double[x.length];
        for (int i = 0; i < x.length; i++) {
            x[i] *= 3;
            gelu[i] = 0.5 * x[i] * (1 + Erf.erf(x[i] / Math.sqrt(2)));
            quick[i] = x[i] / (1 + Math.exp(-1.702 * x[i]));
        }
        try (FloatTensor tx = FloatTensor.of(Shape.of(50, 100), x); FloatTensor out = FloatTensor.zeros(50, 100)) {
            cpu.gelu(tx, out);
            assertThat(relErr(out.toArray(), gelu)).isLessThan(TOL);
            cpu.quickGelu(tx, out);
            assertThat(relErr(out.toArray(), quick)).isLessThan(TOL);
        }
        // gelu(1) = 0.8413447460685429 (= Phi(1))
        try (FloatTensor one = FloatTensor.of(Shape.of(1), new float[] {1f}); FloatTensor out = FloatTensor.zeros(1)) {
            cpu.gelu(one, out);
            assertThat((double) out.get(0)).isCloseTo(0.8413447460685429, org.assertj.core.data.Offset.offset(1e-7));
        }
    }

    @Test
    void bidirectionalAttentionAgainstFp64() {
        AttentionShape shape = new AttentionShape(4, 2, 8);
        int[] starts = {0, 13};
        int[] lengths = {13, 20};
        int t = 33, qw = 32, kw = 16;
        float[] q = rand(t * qw), k = rand(t * kw), v = rand(t * kw);
        double[] ref = new double[t * qw];
        for (int s = 0; s < 2; s++) {
            for (int h = 0; h < 4; h++) {
                int g = h / 2;
                for (int i = starts[s]; i < starts[s] + lengths[s]; i++) {
                    double[] p = new double[t];
                    double max = Double.NEGATIVE_INFINITY;
                    for (int j = starts[s]; j < starts[s] + lengths[s]; j++) {
                        double d = 0;
                        for (int c = 0; c < 8; c++) {
                            d += (double) q[i * qw + h * 8 + c] * k[j * kw + g * 8 + c];
                        }
                        p[j] = d / Math.sqrt(8);
                        max = Math.max(max, p[j]);
                    }
                    double sum = 0;
                    for (int j = starts[s]; j < starts[s] + lengths[s]; j++) {
                        p[j] = Math.exp(p[j] - max);
                        sum += p[j];
                    }
                    for (int j = starts[s]; j < starts[s] + lengths[s]; j++) {
                        for (int c = 0; c < 8; c++) {
                            ref[i * qw + h * 8 + c] += p[j] / sum * v[j * kw + g * 8 + c];
                        }
                    }
                }
            }
        }
        try (FloatTensor tq = FloatTensor.of(Shape.of(t, qw), q); FloatTensor tk = FloatTensor.of(Shape.of(t, kw), k);
             FloatTensor tv = FloatTensor.of(Shape.of(t, kw), v); FloatTensor out = FloatTensor.zeros(t, qw)) {
            cpu.bidirectionalAttention(tq, tk, tv, out, shape, starts, lengths);
            assertThat(relErr(out.toArray(), ref)).isLessThan(TOL);
        }
    }

    @Test
    void copyBlockCopiesExactlyTheBlock() {
        float[] src = rand(6 * 10);
        try (FloatTensor s = FloatTensor.of(Shape.of(6, 10), src); FloatTensor d = FloatTensor.zeros(5, 7)) {
            cpu.copyBlock(s, 2, 3, d, 1, 4, 3, 3);
            for (int r = 0; r < 5; r++) {
                for (int c = 0; c < 7; c++) {
                    float expected = r >= 1 && r < 4 && c >= 4 ? src[(r - 1 + 2) * 10 + (c - 4 + 3)] : 0f;
                    assertThat(d.get(r, c)).isEqualTo(expected);
                }
            }
            assertThatThrownBy(() -> cpu.copyBlock(s, 4, 0, d, 0, 0, 3, 2)).isInstanceOf(IllegalArgumentException.class)
                    .hasMessageContaining("out of bounds");
        }
    }

    /**
     * fp64 reference of the masked attention written from the definitions: grid coordinates, causal order, window
     * overwrite of the visual block, pre- or post-softmax removal of visual keys in pruned heads, zero visual
     * rows for pruned heads. Also returns the weights (for row-sum checks).
     */
    static double[] maskedReference(float[] q, float[] k, float[] v, int t, AttentionShape shape, int prefix, int gridRows,
                                    int gridCols, int window, boolean[] keep, boolean renormalize, double[][] weightsOut) {
        int hd = shape.headDim(), qw = shape.heads() * hd, kw = shape.kvHeads() * hd;
        int nv = gridRows * gridCols, radius = (window - 1) / 2;
        double[] out = new double[t * qw];
        for (int h = 0; h < shape.heads(); h++) {
            int g = h / shape.groupSize();
            double[] weights = new double[t * t];
            for (int i = 0; i < t; i++) {
                boolean vi = i >= prefix && i < prefix + nv;
                boolean[] allowed = new boolean[t];
                boolean[] zeroAfter = new boolean[t];
                for (int j = 0; j < t; j++) {
                    boolean vj = j >= prefix && j < prefix + nv;
                    if (vi && vj) {
                        int ri = (i - prefix) / gridCols, ci = (i - prefix) % gridCols;
                        int rj = (j - prefix) / gridCols, cj = (j - prefix) % gridCols;
                        allowed[j] = Math.abs(ri - rj) <= radius && Math.abs(ci - cj) <= radius;
                    } else {
                        allowed[j] = j <= i;
                    }
                    if (allowed[j] && vj && !keep[h]) {
                        if (renormalize) {
                            allowed[j] = false;
                        } else {
                            zeroAfter[j] = true;
                        }
                    }
                }
                double max = Double.NEGATIVE_INFINITY;
                double[] s = new double[t];
                for (int j = 0; j < t; j++) {
                    if (allowed[j]) {
                        for (int c = 0; c < hd; c++) {
                            s[j] += (double) q[i * qw + h * hd + c] * k[j * kw + g * hd + c];
                        }
                        s[j] /= Math.sqrt(hd);
                        max = Math.max(max, s[j]);
                    }
                }
                double sum = 0;
                for (int j = 0; j < t; j++) {
                    if (allowed[j]) {
                        sum += Math.exp(s[j] - max);
                    }
                }
                for (int j = 0; j < t; j++) {
                    double p = allowed[j] && sum > 0 ? Math.exp(s[j] - max) / sum : 0;
                    if (zeroAfter[j]) {
                        p = 0;
                    }
                    weights[i * t + j] = p;
                    if (!(vi && !keep[h])) {
                        for (int c = 0; c < hd; c++) {
                            out[i * qw + h * hd + c] += p * v[j * kw + g * hd + c];
                        }
                    }
                }
            }
            if (weightsOut != null) {
                weightsOut[h] = weights;
            }
        }
        return out;
    }

    @Test
    void maskedAttentionMatchesTheDefinitionInBothModes() {
        AttentionShape shape = new AttentionShape(4, 2, 8);
        int prefix = 3, gridRows = 4, gridCols = 5, t = prefix + 20 + 6;
        boolean[] keep = {true, false, true, false};
        float[] q = rand(t * 32), k = rand(t * 16), v = rand(t * 16);
        VisualLayout layout = VisualLayout.ofWindow(prefix, gridRows, gridCols, 3);
        for (boolean renorm : new boolean[] {true, false}) {
            double[][] refWeights = new double[4][];
            double[] ref = maskedReference(q, k, v, t, shape, prefix, gridRows, gridCols, 3, keep, renorm, refWeights);
            double[][] seen = new double[4][];
            AttentionObserver obs = new AttentionObserver() {
                @Override
                public boolean wantsProbabilities() {
                    return true;
                }

                @Override
                public void probabilities(int sequence, int head, int length, float[] probs) {
                    double[] d = new double[probs.length];
                    for (int i = 0; i < d.length; i++) {
                        d[i] = probs[i];
                    }
                    seen[head] = d;
                }
            };
            try (FloatTensor tq = FloatTensor.of(Shape.of(t, 32), q); FloatTensor tk = FloatTensor.of(Shape.of(t, 16), k);
                 FloatTensor tv = FloatTensor.of(Shape.of(t, 16), v); FloatTensor out = FloatTensor.zeros(t, 32)) {
                cpu.visualMaskedAttention(tq, tk, tv, out, shape, layout, keep, renorm, obs);
                assertThat(relErr(out.toArray(), ref)).as("renormalize=%s", renorm).isLessThan(TOL);
            }
            for (int h = 0; h < 4; h++) {
                double num = 0, den = 0;
                for (int i = 0; i < t * t; i++) {
                    num += Math.pow(seen[h][i] - refWeights[h][i], 2);
                    den += refWeights[h][i] * refWeights[h][i];
                }
                assertThat(Math.sqrt(num / den)).isLessThan(TOL);
            }
            if (!renorm) {
                // released-code semantics: a text row of a pruned head sums to 1 - (its mass on visual keys when kept)
                double[][] keptWeights = new double[4][];
                boolean[] all = {true, true, true, true};
                maskedReference(q, k, v, t, shape, prefix, gridRows, gridCols, 3, all, false, keptWeights);
                int row = t - 1;
                double sum = 0, visualMass = 0;
                for (int j = 0; j < t; j++) {
                    sum += seen[1][row * t + j];
                    if (j >= prefix && j < prefix + 20) {
                        visualMass += keptWeights[1][row * t + j];
                    }
                }
                assertThat(visualMass).isGreaterThan(0.05);
                assertThat(sum).isCloseTo(1 - visualMass, org.assertj.core.data.Offset.offset(1e-5));
            }
        }
    }

    @Test
    void prunedAttentionEqualsRenormalisedMaskedAndNeverReadsPrunedVisualColumns() {
        AttentionShape shape = new AttentionShape(6, 3, 8); // GQA: kv head g serves query heads 2g, 2g+1
        int gridRows = 6, gridCols = 7;
        for (int prefix : new int[] {0, 4}) {
            for (int window : new int[] {1, 3, 5, 13}) {
                int t = prefix + 42 + 9;
                boolean[] keep = {true, true, false, false, true, false};
                float[] q = rand(t * 48), k = rand(t * 24), v = rand(t * 24);
                VisualLayout layout = VisualLayout.ofWindow(prefix, gridRows, gridCols, window);
                double[] ref = maskedReference(q, k, v, t, shape, prefix, gridRows, gridCols, window, keep, true, null);
                // poison what a pruned head must never read: its visual q columns, and the visual k/v of kv head 1
                // (both of whose query heads 2 and 3 are pruned)
                for (int i = prefix; i < prefix + 42; i++) {
                    for (int h : new int[] {2, 3, 5}) {
                        for (int c = 0; c < 8; c++) {
                            q[i * 48 + h * 8 + c] = Float.NaN;
                        }
                    }
                    for (int c = 0; c < 8; c++) {
                        k[i * 24 + 8 + c] = Float.NaN;
                        v[i * 24 + 8 + c] = Float.NaN;
                    }
                }
                try (FloatTensor tq = FloatTensor.of(Shape.of(t, 48), q); FloatTensor tk = FloatTensor.of(Shape.of(t, 24), k);
                     FloatTensor tv = FloatTensor.of(Shape.of(t, 24), v); FloatTensor out = FloatTensor.of(Shape.of(t, 48), rand(t * 48))) {
                    cpu.visualPrunedAttention(tq, tk, tv, out, shape, layout, keep);
                    assertThat(relErr(out.toArray(), ref)).as("prefix %d window %d", prefix, window).isLessThan(TOL);
                }
            }
        }
    }

    @Test
    void visualOpsRejectMismatchedLayouts() {
        AttentionShape shape = new AttentionShape(2, 2, 4);
        try (FloatTensor q = FloatTensor.zeros(10, 8); FloatTensor out = FloatTensor.zeros(10, 8)) {
            VisualLayout tooLong = new VisualLayout(2, 3, 3, 1);
            assertThatThrownBy(() -> cpu.visualPrunedAttention(q, q, q, out, shape, tooLong, new boolean[2]))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("do not fit a sequence of 10 rows");
            VisualLayout ok = new VisualLayout(1, 3, 3, 1);
            assertThatThrownBy(() -> cpu.visualMaskedAttention(q, q, q, out, shape, ok, new boolean[3], true, null))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("3 head flags for 2 heads");
        }
    }
}
