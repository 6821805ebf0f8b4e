package io.whittle.methods.camera.quant;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.whittle.tensor.FloatTensor;
import io.whittle.tensor.HostAllocator;
import java.util.Random;
import org.junit.jupiter.api.Test;

class HessianTest {

    /** 2/n sum x x^T in double, the GPTQ convention. */
    private static double[] naive(float[] x, int tokens, int dim, float[] weights) {
        double[] h = new double[dim * dim];
        for (int t = 0; t < tokens; t++) {
            double w = weights == null ? 1 : weights[t];
            for (int i = 0; i < dim; i++) {
                for (int j = 0; j < dim; j++) {
                    h[i * dim + j] += w * x[t * dim + i] * x[t * dim + j];
                }
            }
        }
        for (int i = 0; i < h.length; i++) {
            h[i] *= 2.0 / tokens;
        }
        return h;
    }

    private static double relErr(float[] got, double[] ref) {
        double num = 0;
        double den = 0;
        for (int i = 0; i < ref.length; i++) {
            num += (got[i] - ref[i]) * (got[i] - ref[i]);
            den += ref[i] * ref[i];
        }
        return Math.sqrt(num / den);
    }

    @Test
    void accumulatesTwoOverNSumOfOuterProductsAcrossBatches() {
        Random rnd = new Random(3);
        int dim = 37;
        int tokens = 301;
        float[] x = QuantTestData.correlatedInputs(rnd, tokens, dim);
        try (Hessian h = new Hessian(dim);
             FloatTensor all = QuantTestData.tensor(x, tokens, dim)) {
            h.add(all.rowSlice(0, 100));
            h.add(all.rowSlice(100, 1));
            h.add(all.rowSlice(101, 200));
            assertThat(h.samples()).isEqualTo(tokens);
            try (FloatTensor m = h.toMatrix(HostAllocator.root())) {
                float[] got = m.toArray();
                assertThat(relErr(got, naive(x, tokens, dim, null))).isLessThan(1e-6);
                for (int i = 0; i < dim; i++) {
                    for (int j = 0; j < dim; j++) {
                        assertThat(got[i * dim + j]).isEqualTo(got[j * dim + i]);
                    }
                }
            }
        }
    }

    @Test
    void arrayRowsAndWeightedRows() {
        Random rnd = new Random(4);
        int dim = 20;
        int tokens = 600; // more than one internal chunk
        float[] x = QuantTestData.correlatedInputs(rnd, tokens, dim);
        float[][] rows = new float[tokens][];
        float[] weights = new float[tokens];
        for (int t = 0; t < tokens; t++) {
            rows[t] = java.util.Arrays.copyOfRange(x, t * dim, (t + 1) * dim);
            weights[t] = rnd.nextFloat();
        }
        try (Hessian plain = new Hessian(dim); Hessian weighted = new Hessian(dim);
             FloatTensor all = QuantTestData.tensor(x, tokens, dim)) {
            plain.add(rows);
            weighted.add(all, weights);
            assertThat(weighted.samples()).isEqualTo(tokens);
            try (FloatTensor a = plain.toMatrix(HostAllocator.root()); FloatTensor b = weighted.toMatrix(HostAllocator.root())) {
                assertThat(relErr(a.toArray(), naive(x, tokens, dim, null))).isLessThan(1e-6);
                assertThat(relErr(b.toArray(), naive(x, tokens, dim, weights))).isLessThan(1e-6);
            }
        }
    }

    @Test
    void emptyHessianIsZero() {
        try (Hessian h = new Hessian(5); FloatTensor m = h.toMatrix(HostAllocator.root())) {
            assertThat(h.samples()).isZero();
            assertThat(m.toArray()).containsOnly(0f);
        }
    }

    @Test
    void badInputsAreClearErrors() {
        try (Hessian h = new Hessian(4); FloatTensor wrong = FloatTensor.zeros(3, 5); FloatTensor nan = FloatTensor.zeros(2, 4)) {
            assertThatThrownBy(() -> h.add(wrong))
                    .hasMessage("Hessian of dimension 4 needs a [tokens, 4] batch, got [3, 5]");
            nan.set(1, 2, Float.NaN);
            assertThatThrownBy(() -> h.add(nan))
                    .hasMessage("calibration input row 1, column 2 is NaN; the Hessian needs finite activations");
            assertThatThrownBy(() -> h.add(nan, new float[]{1f}))
                    .hasMessage("Hessian batch has 2 rows but 1 row weights");
            assertThatThrownBy(() -> h.add(new float[][]{{1, 2, 3}}))
                    .hasMessage("Hessian input row 0 has 3 values, expected 4");
            assertThat(h.samples()).isZero();
        }
        assertThatThrownBy(() -> new Hessian(0)).hasMessage("Hessian dimension must be positive, got 0");
    }
}
