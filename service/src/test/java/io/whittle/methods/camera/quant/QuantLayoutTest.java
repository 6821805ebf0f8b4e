package io.whittle.methods.camera.quant;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.whittle.tensor.FloatTensor;
import java.util.Random;
import org.junit.jupiter.api.Test;

class QuantLayoutTest {

    @Test
    void columnSlicesRestartGroupsAndEndInShorterGroups() {
        // W_down of an expert with f = 300 micro-experts sorted into slices of 40 (3 bit), 200 (2 bit), 60 (1 bit)
        QuantLayout l = QuantLayout.columnSlices(8, new int[]{0, 40, 240, 300}, new int[]{3, 2, 1}, 128, false, ScaleFormat.F16);
        assertThat(l.groupCount()).isEqualTo(1 + 2 + 1);
        int[][] expected = {{0, 40}, {40, 168}, {168, 240}, {240, 300}};
        for (int g = 0; g < l.groupCount(); g++) {
            assertThat(new int[]{l.groupStart(g), l.groupEnd(g)}).containsExactly(expected[g]);
        }
        assertThat(l.scheme(5, 0).bits()).isEqualTo(3);
        assertThat(l.scheme(5, 2).bits()).isEqualTo(2);
        assertThat(l.scheme(0, 3).bits()).isEqualTo(1);
        assertThat(l.groupOfColumn(0)).isEqualTo(0);
        assertThat(l.groupOfColumn(39)).isEqualTo(0);
        assertThat(l.groupOfColumn(40)).isEqualTo(1);
        assertThat(l.groupOfColumn(239)).isEqualTo(2);
        assertThat(l.groupOfColumn(299)).isEqualTo(3);
        assertThat(l.payloadBits()).isEqualTo(8L * (40 * 3 + 200 * 2 + 60));
        assertThat(l.isUniform()).isFalse();
    }

    @Test
    void rtnRespectsPerRowWidthsAndBoundsTheError() {
        Random rnd = new Random(8);
        int rows = 12;
        int cols = 96;
        int[] rowBits = {3, 3, 2, 2, 2, 2, 2, 2, 2, 1, 1, 8};
        QuantLayout l = QuantLayout.rowBits(cols, rowBits, 32, false, ScaleFormat.F16);
        float[] w = QuantTestData.weights(rnd, rows, cols);
        try (FloatTensor wt = QuantTestData.tensor(w, rows, cols)) {
            QuantizedMatrix m = RtnQuantizer.quantize(wt, l);
            float[] deq = QuantTestData.dequantized(m);
            for (int r = 0; r < rows; r++) {
                int lo = -(1 << (rowBits[r] - 1));
                int hi = (1 << (rowBits[r] - 1)) - 1;
                for (int c = 0; c < cols; c++) {
                    assertThat(m.code(r, c)).isBetween(lo, hi);
                    int g = l.groupOfColumn(c);
                    // min <= 0 <= max is representable up to one step at the ends, half a step inside
                    assertThat(Math.abs(w[r * cols + c] - deq[r * cols + c])).isLessThanOrEqualTo(m.scale(r, g) * 1.0001f);
                }
            }
            // 8-bit row is near-lossless
            double num = 0;
            double den = 0;
            for (int c = 0; c < cols; c++) {
                num += Math.pow(w[11 * cols + c] - deq[11 * cols + c], 2);
                den += Math.pow(w[11 * cols + c], 2);
            }
            assertThat(Math.sqrt(num / den)).isLessThan(0.01);
        }
    }

    @Test
    void rtnErrorShrinksWithWidth() {
        Random rnd = new Random(9);
        float[] w = QuantTestData.weights(rnd, 16, 128);
        double previous = Double.MAX_VALUE;
        try (FloatTensor wt = QuantTestData.tensor(w, 16, 128)) {
            for (int bits = 1; bits <= 8; bits++) {
                float[] deq = QuantTestData.dequantized(RtnQuantizer.quantize(wt,
                        QuantLayout.uniform(16, 128, new QuantScheme(bits, 32, false, ScaleFormat.F16))));
                double err = 0;
                for (int i = 0; i < w.length; i++) {
                    err += Math.pow(w[i] - deq[i], 2);
                }
                assertThat(err).as("bits %d", bits).isLessThan(previous);
                previous = err;
            }
        }
    }

    @Test
    void quantizedMatrixValidatesWhatItIsGiven() {
        QuantLayout l = QuantLayout.uniform(1, 4, new QuantScheme(2, 4, false, ScaleFormat.F16));
        assertThatThrownBy(() -> new QuantizedMatrix(l, new byte[]{0, 0, 2, 0}, new float[]{0.5f}, new byte[]{0}))
                .hasMessage("code [0, 2] = 2 is outside [-2, 1] for 2 bits");
        assertThatThrownBy(() -> new QuantizedMatrix(l, new byte[4], new float[]{0.1f}, new byte[]{0}))
                .hasMessage("scale [0, 0] = 0.1 is not a positive finite F16 value");
        assertThatThrownBy(() -> new QuantizedMatrix(l, new byte[4], new float[]{0.5f}, null))
                .hasMessage("an asymmetric layout needs zero points");
        assertThatThrownBy(() -> new QuantizedMatrix(l, new byte[4], new float[]{0.5f}, new byte[]{-3}))
                .hasMessage("zero point [0, 0] = -3 is outside [-2, 1] for 2 bits");
    }

    @Test
    void badLayoutsAreClearErrors() {
        assertThatThrownBy(() -> QuantLayout.columnSlices(4, new int[]{0, 10, 10}, new int[]{3, 2}, 8, false, ScaleFormat.F16))
                .hasMessage("column slices: offsets must be strictly increasing (no empty slice), got [0, 10, 10]");
        assertThatThrownBy(() -> QuantLayout.columnSlices(4, new int[]{0, 10}, new int[]{3, 2}, 8, false, ScaleFormat.F16))
                .hasMessage("column slices: 2 widths need 3 offsets, got 2");
        assertThatThrownBy(() -> QuantLayout.rowBits(16, new int[]{2, 0}, 8, false, ScaleFormat.F16))
                .hasMessage("row 1: bits must be in 1..8, got 0");
        assertThatThrownBy(() -> QuantLayout.rowBits(16, new int[]{2}, 0, false, ScaleFormat.F16))
                .hasMessage("group_size must be a positive number of input columns, got 0");
        try (FloatTensor w = FloatTensor.zeros(3, 4)) {
            assertThatThrownBy(() -> RtnQuantizer.quantize(w, QuantLayout.uniform(4, 3, new QuantScheme(4, 3, true, ScaleFormat.F16))))
                    .hasMessage("weights [3, 4] do not match the layout's [4, 3]");
            w.set(1, 2, Float.POSITIVE_INFINITY);
            assertThatThrownBy(() -> RtnQuantizer.quantize(w, QuantLayout.uniform(3, 4, new QuantScheme(4, 4, true, ScaleFormat.F16))))
                    .hasMessage("weight [1, 2] is Infinity; cannot quantize non-finite weights");
        }
    }
}
