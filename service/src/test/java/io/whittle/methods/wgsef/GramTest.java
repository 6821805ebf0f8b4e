package io.whittle.methods.wgsef;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.whittle.tensor.FloatTensor;
import io.whittle.tensor.Shape;
import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.api.Test;

/** The calibration statistic against a naive FP64 X^T X / n. */
class GramTest {

    @Test
    void batchedAccumulationMatchesNaiveGram() {
        Random rnd = new Random(41);
        int dim = 37;
        int n = 150;
        float[] x = Calibration.correlatedInputs(rnd, n, dim);
        double[] ref = new double[dim * dim];
        for (int i = 0; i < n; i++) {
            for (int a = 0; a < dim; a++) {
                for (int b = 0; b < dim; b++) {
                    ref[a * dim + b] += (double) x[i * dim + a] * x[i * dim + b] / n;
                }
            }
        }
        try (Gram g = new Gram(dim); FloatTensor t = FloatTensor.of(Shape.of(50, dim), Arrays.copyOfRange(x, 100 * dim, n * dim))) {
            g.accumulate(Arrays.copyOfRange(x, 0, 60 * dim), 60);
            g.accumulate(Arrays.copyOfRange(x, 60 * dim, 100 * dim), 40);
            g.accumulate(t);
            assertEquals(n, g.samples());
            float[] h = g.toArray();
            double num = 0;
            double den = 0;
            for (int i = 0; i < ref.length; i++) {
                num += (h[i] - ref[i]) * (h[i] - ref[i]);
                den += ref[i] * ref[i];
            }
            assertTrue(Math.sqrt(num / den) < 1e-6, "relative error " + Math.sqrt(num / den));
            for (int a = 0; a < dim; a++) {
                for (int b = 0; b < dim; b++) {
                    assertEquals(h[a * dim + b], h[b * dim + a], "symmetric");
                }
            }
            double diag = 0;
            for (int a = 0; a < dim; a++) {
                diag += ref[a * dim + a];
            }
            assertEquals(diag / dim, g.meanDiagonal(), 1e-5 * diag / dim);
        }
    }

    @Test
    void ofMatrixRoundTripsAndSizesAreChecked() {
        float[] h = {2, 1, 1, 3};
        try (Gram g = Gram.ofMatrix(h, 2)) {
            assertArrayEquals(h, g.toArray());
            assertEquals(2.5, g.meanDiagonal(), 1e-12);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> g.accumulate(new float[5], 2));
            assertTrue(e.getMessage().startsWith("Gram: expected 4 values"), e.getMessage());
        }
        assertThrows(IllegalArgumentException.class, () -> Gram.ofMatrix(new float[3], 2));
    }
}
