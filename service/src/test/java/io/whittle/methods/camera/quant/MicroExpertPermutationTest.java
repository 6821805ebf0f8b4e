package io.whittle.methods.camera.quant;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.whittle.tensor.FloatTensor;
import io.whittle.tensor.HostAllocator;
import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.api.Test;

class MicroExpertPermutationTest {

    @Test
    void sortsByWidthHighestFirstTiesByIndex() {
        MicroExpertPermutation p = MicroExpertPermutation.byBits(new int[]{1, 3, 2, 3, 2, 1, 2});
        assertThat(p.order()).containsExactly(1, 3, 2, 4, 6, 0, 5);
        assertThat(p.sortedBits()).containsExactly(3, 3, 2, 2, 2, 1, 1);
        assertThat(p.sliceOffsets()).containsExactly(0, 2, 5, 7);
        assertThat(p.sliceBits()).containsExactly(3, 2, 1);
        int[] inv = p.inverse();
        int[] order = p.order();
        for (int k = 0; k < order.length; k++) {
            assertThat(inv[order[k]]).isEqualTo(k);
        }
        MicroExpertPermutation missing = MicroExpertPermutation.byBits(new int[]{2, 2, 3});
        assertThat(missing.sliceBits()).containsExactly(3, 2); // empty classes have no slice
        assertThat(missing.sliceOffsets()).containsExactly(0, 1, 3);
        assertThat(MicroExpertPermutation.byBits(new int[]{4, 4, 4}).isIdentity()).isTrue();
    }

    /** The expert's SwiGLU output y = W_down (silu(W_gate x) * (W_up x)), in double. */
    private static double[] terms(float[] gate, float[] up, float[] down, int f, int d, float[] x, int outRow) {
        double[] t = new double[f];
        for (int j = 0; j < f; j++) {
            double g = 0;
            double u = 0;
            for (int c = 0; c < d; c++) {
                g += (double) gate[j * d + c] * x[c];
                u += (double) up[j * d + c] * x[c];
            }
            double act = g / (1 + Math.exp(-g)) * u;
            t[j] = act * down[outRow * f + j];
        }
        return t;
    }

    @Test
    void permutingGateUpRowsAndDownColumnsLeavesTheExpertOutputUnchanged() {
        Random rnd = new Random(12);
        int f = 40;
        int d = 24;
        float[] gate = QuantTestData.weights(rnd, f, d);
        float[] up = QuantTestData.weights(rnd, f, d);
        float[] down = QuantTestData.weights(rnd, d, f);
        int[] bits = new int[f];
        for (int j = 0; j < f; j++) {
            bits[j] = 1 + rnd.nextInt(3);
        }
        MicroExpertPermutation p = MicroExpertPermutation.byBits(bits);
        HostAllocator a = HostAllocator.root();
        try (FloatTensor g = QuantTestData.tensor(gate, f, d); FloatTensor u = QuantTestData.tensor(up, f, d);
             FloatTensor dn = QuantTestData.tensor(down, d, f);
             FloatTensor gs = p.permuteRows(g, a); FloatTensor us = p.permuteRows(u, a); FloatTensor ds = p.permuteColumns(dn, a);
             FloatTensor gBack = p.unpermuteRows(gs, a); FloatTensor dBack = p.unpermuteColumns(ds, a)) {
            assertThat(gBack.toArray()).isEqualTo(gate);
            assertThat(dBack.toArray()).isEqualTo(down);
            int[] order = p.order();
            for (int t = 0; t < 5; t++) {
                float[] x = new float[d];
                for (int c = 0; c < d; c++) {
                    x[c] = (float) rnd.nextGaussian();
                }
                for (int row = 0; row < d; row++) {
                    double[] before = terms(gate, up, down, f, d, x, row);
                    double[] after = terms(gs.toArray(), us.toArray(), ds.toArray(), f, d, x, row);
                    // each micro-expert's contribution is bit-identical, only its position moves ...
                    for (int k = 0; k < f; k++) {
                        assertThat(after[k]).isEqualTo(before[order[k]]);
                    }
                    // ... so the output differs at most by the order of a double sum
                    double y0 = Arrays.stream(before).sum();
                    double y1 = Arrays.stream(after).sum();
                    double scale = Arrays.stream(before).map(Math::abs).sum();
                    assertThat(Math.abs(y1 - y0)).isLessThanOrEqualTo(1e-14 * scale);
                }
            }
        }
    }

    @Test
    void layoutsFollowTheSortedWidths() {
        MicroExpertPermutation p = MicroExpertPermutation.byBits(new int[]{1, 3, 2, 3, 2, 1, 2});
        QuantLayout rows = p.rowLayout(32, 16, false, ScaleFormat.F16);
        assertThat(rows.rows()).isEqualTo(7);
        assertThat(rows.scheme(0, 0).bits()).isEqualTo(3);
        assertThat(rows.scheme(4, 1).bits()).isEqualTo(2);
        assertThat(rows.scheme(6, 1).bits()).isEqualTo(1);
        QuantLayout cols = p.columnLayout(5, 16, false, ScaleFormat.F16);
        assertThat(cols.segmentCount()).isEqualTo(3);
        assertThat(cols.segmentStart(1)).isEqualTo(2);
        assertThat(cols.bits(3, 2)).isEqualTo(1);
    }

    @Test
    void badInputsAreClearErrors() {
        assertThatThrownBy(() -> MicroExpertPermutation.byBits(new int[]{2, 9})).hasMessage("micro-expert 1: bits must be in 1..8, got 9");
        assertThatThrownBy(() -> MicroExpertPermutation.of(new int[]{0, 0}, new int[]{2, 2}))
                .hasMessage("not a permutation of 0..1: entry 1 is 0");
        assertThatThrownBy(() -> MicroExpertPermutation.of(new int[]{0, 1}, new int[]{1, 2}))
                .hasMessage("widths must not increase along the sorted order (position 1)");
        MicroExpertPermutation p = MicroExpertPermutation.byBits(new int[]{2, 1, 2});
        try (FloatTensor w = FloatTensor.zeros(4, 3)) {
            assertThatThrownBy(() -> p.permuteRows(w, HostAllocator.root()))
                    .hasMessage("expected [3, cols] (rows = micro-experts), got [4, 3]");
        }
    }
}
