package io.whittle.methods.camera.quant;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.whittle.tensor.FloatTensor;
import io.whittle.tensor.HostAllocator;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

class GptqQuantizerTest {

    private static final int ROWS = 64;
    private static final int COLS = 256;
    private static final int TOKENS = 2048;

    private record Problem(float[] w, float[] x) {
    }

    private static Problem problem(long seed, int rows, int cols, int tokens) {
        Random rnd = new Random(seed);
        return new Problem(QuantTestData.weights(rnd, rows, cols), QuantTestData.correlatedInputs(rnd, tokens, cols));
    }

    private static Hessian hessianOf(float[] x, int tokens, int cols) {
        Hessian h = new Hessian(cols);
        try (FloatTensor xt = QuantTestData.tensor(x, tokens, cols)) {
            h.add(xt);
        }
        return h;
    }

    @ParameterizedTest
    @ValueSource(ints = {2, 3, 4})
    void gptqBeatsRtnOnOutputErrorAtTheSameWidth(int bits) {
        Problem p = problem(100 + bits, ROWS, COLS, TOKENS);
        QuantLayout layout = QuantLayout.uniform(ROWS, COLS, new QuantScheme(bits, 128, false, ScaleFormat.F16));
        try (Hessian h = hessianOf(p.x(), TOKENS, COLS); FloatTensor w = QuantTestData.tensor(p.w(), ROWS, COLS)) {
            GptqResult gptq = new GptqQuantizer().quantize(w, layout, h);
            QuantizedMatrix rtn = RtnQuantizer.quantize(w, layout);
            assertThat(gptq.usedFallback()).isFalse();
            double eGptq = QuantTestData.relativeOutputError(p.x(), TOKENS, p.w(), QuantTestData.dequantized(gptq.matrix()), ROWS, COLS);
            double eRtn = QuantTestData.relativeOutputError(p.x(), TOKENS, p.w(), QuantTestData.dequantized(rtn), ROWS, COLS);
            // a clear margin, not a tie: GPTQ minimizes exactly this error
            assertThat(eGptq).as("bits %d: gptq %.4f vs rtn %.4f", bits, eGptq, eRtn).isLessThan(0.8 * eRtn);
            assertThat(gptq.proxyLoss()).isPositive().isFinite();
        }
    }

    @Test
    void mixedRowWidthsAndColumnSlicesAlsoBeatRtn() {
        Problem p = problem(7, 48, 200, 1500);
        int[] rowBits = new int[48];
        for (int r = 0; r < 48; r++) {
            rowBits[r] = r < 6 ? 3 : r < 42 ? 2 : 1;
        }
        QuantLayout rowsLayout = QuantLayout.rowBits(200, rowBits, 64, false, ScaleFormat.F16);
        // W_down-like: input columns in slices of 25 / 150 / 25, groups of 64 restart in each slice
        QuantLayout sliceLayout = QuantLayout.columnSlices(48, new int[]{0, 25, 175, 200}, new int[]{3, 2, 1}, 64, false, ScaleFormat.F16);
        try (Hessian h = hessianOf(p.x(), 1500, 200); FloatTensor w = QuantTestData.tensor(p.w(), 48, 200)) {
            GptqQuantizer gptq = new GptqQuantizer();
            try (InverseHessian f = gptq.factor(h)) {
                for (QuantLayout layout : new QuantLayout[]{rowsLayout, sliceLayout}) {
                    QuantizedMatrix g = gptq.quantize(w, layout, f).matrix();
                    double eGptq = QuantTestData.relativeOutputError(p.x(), 1500, p.w(), QuantTestData.dequantized(g), 48, 200);
                    double eRtn = QuantTestData.relativeOutputError(p.x(), 1500, p.w(),
                            QuantTestData.dequantized(RtnQuantizer.quantize(w, layout)), 48, 200);
                    assertThat(eGptq).as("%s: gptq %.4f vs rtn %.4f", layout, eGptq, eRtn).isLessThan(0.85 * eRtn);
                    for (int r = 0; r < 48; r++) {
                        for (int c = 0; c < 200; c++) {
                            QuantScheme s = layout.scheme(r, layout.groupOfColumn(c));
                            assertThat(g.code(r, c)).isBetween(s.qMin(), s.qMax());
                        }
                    }
                }
            }
        }
    }

    /**
     * An independent, unblocked GPTQ in double: quantize columns in order and update the remaining weights and
     * the inverse Hessian of the remaining columns explicitly (OBS, Frantar et al. eqs. 2-3, fixed order); qparams
     * of a group from the current weights at its first column. Blocking, Cholesky and fp32 must not change the
     * result beyond rare rounding-boundary flips.
     */
    @Test
    void matchesAnUnblockedDoublePrecisionReference() {
        int rows = 24;
        int cols = 48;
        int tokens = 400;
        Problem p = problem(21, rows, cols, tokens);
        QuantLayout layout = QuantLayout.columnSlices(rows, new int[]{0, 20, 48}, new int[]{4, 3}, 8, false, ScaleFormat.F16);
        double damp = 0.01;
        try (Hessian h = hessianOf(p.x(), tokens, cols); FloatTensor w = QuantTestData.tensor(p.w(), rows, cols)) {
            QuantizedMatrix got = new GptqQuantizer(damp, 16, HostAllocator.root()).quantize(w, layout, h).matrix();
            byte[] ref = referenceGptq(p.w(), p.x(), rows, cols, tokens, layout, damp);
            int same = 0;
            for (int i = 0; i < ref.length; i++) {
                same += ref[i] == got.code(i / cols, i % cols) ? 1 : 0;
            }
            assertThat((double) same / ref.length).isGreaterThan(0.99);
        }
    }

    private static byte[] referenceGptq(float[] w0, float[] x, int rows, int cols, int tokens, QuantLayout layout, double damp) {
        double[][] h = new double[cols][cols];
        for (int t = 0; t < tokens; t++) {
            for (int i = 0; i < cols; i++) {
                for (int j = 0; j < cols; j++) {
                    h[i][j] += 2.0 / tokens * x[t * cols + i] * x[t * cols + j];
                }
            }
        }
        double mean = 0;
        for (int i = 0; i < cols; i++) {
            mean += h[i][i] / cols;
        }
        for (int i = 0; i < cols; i++) {
            h[i][i] += damp * mean;
        }
        double[][] hinv = invert(h);
        double[][] w = new double[rows][cols];
        for (int r = 0; r < rows; r++) {
            for (int c = 0; c < cols; c++) {
                w[r][c] = w0[r * cols + c];
            }
        }
        byte[] q = new byte[rows * cols];
        float[] scale = new float[rows];
        int[] zero = new int[rows];
        for (int j = 0; j < cols; j++) {
            int g = layout.groupOfColumn(j);
            for (int r = 0; r < rows; r++) {
                QuantScheme s = layout.scheme(r, g);
                if (j == layout.groupStart(g)) {
                    float min = Float.POSITIVE_INFINITY;
                    float max = Float.NEGATIVE_INFINITY;
                    for (int c = j; c < layout.groupEnd(g); c++) {
                        min = Math.min(min, (float) w[r][c]);
                        max = Math.max(max, (float) w[r][c]);
                    }
                    QuantScheme.GroupParams gp = s.params(min, max);
                    scale[r] = gp.scale();
                    zero[r] = gp.zero();
                }
                int code = s.quantize((float) w[r][j], scale[r], zero[r]);
                q[r * cols + j] = (byte) code;
                double err = (w[r][j] - QuantScheme.dequantize(code, scale[r], zero[r])) / hinv[j][j];
                for (int k = j + 1; k < cols; k++) {
                    w[r][k] -= err * hinv[j][k];
                }
            }
            // remove column j from the inverse Hessian of the remaining columns
            double d = hinv[j][j];
            double[] rowJ = hinv[j].clone();
            for (int a = j + 1; a < cols; a++) {
                for (int b = j + 1; b < cols; b++) {
                    hinv[a][b] -= hinv[a][j] * rowJ[b] / d;
                }
            }
        }
        return q;
    }

    private static double[][] invert(double[][] m) {
        int n = m.length;
        double[][] a = new double[n][2 * n];
        for (int i = 0; i < n; i++) {
            System.arraycopy(m[i], 0, a[i], 0, n);
            a[i][n + i] = 1;
        }
        for (int c = 0; c < n; c++) {
            int piv = c;
            for (int r = c + 1; r < n; r++) {
                if (Math.abs(a[r][c]) > Math.abs(a[piv][c])) {
                    piv = r;
                }
            }
            double[] tmp = a[c];
            a[c] = a[piv];
            a[piv] = tmp;
            double d = a[c][c];
            for (int k = 0; k < 2 * n; k++) {
                a[c][k] /= d;
            }
            for (int r = 0; r < n; r++) {
                if (r != c && a[r][c] != 0) {
                    double f = a[r][c];
                    for (int k = 0; k < 2 * n; k++) {
                        a[r][k] -= f * a[c][k];
                    }
                }
            }
        }
        double[][] inv = new double[n][n];
        for (int i = 0; i < n; i++) {
            System.arraycopy(a[i], n, inv[i], 0, n);
        }
        return inv;
    }

    @Test
    void blockSizeDoesNotChangeTheResultBeyondRounding() {
        Problem p = problem(31, 32, 256, 800);
        QuantLayout layout = QuantLayout.uniform(32, 256, new QuantScheme(3, 32, true, ScaleFormat.F16));
        try (Hessian h = hessianOf(p.x(), 800, 256); FloatTensor w = QuantTestData.tensor(p.w(), 32, 256)) {
            QuantizedMatrix small = new GptqQuantizer(0.01, 32, HostAllocator.root()).quantize(w, layout, h).matrix();
            QuantizedMatrix large = new GptqQuantizer(0.01, 128, HostAllocator.root()).quantize(w, layout, h).matrix();
            int same = 0;
            for (int r = 0; r < 32; r++) {
                for (int c = 0; c < 256; c++) {
                    same += small.code(r, c) == large.code(r, c) ? 1 : 0;
                }
            }
            assertThat(same / (32.0 * 256)).isGreaterThan(0.99);
        }
    }

    @Test
    void expertWithoutCalibrationTokensFallsBackToRtnAndStaysFinite() {
        Random rnd = new Random(41);
        float[] wv = QuantTestData.weights(rnd, 16, 128);
        QuantLayout layout = QuantLayout.rowBits(128, new int[]{3, 3, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 1, 1}, 128, false, ScaleFormat.F16);
        try (Hessian empty = new Hessian(128); FloatTensor w = QuantTestData.tensor(wv, 16, 128)) {
            GptqResult r = new GptqQuantizer().quantize(w, layout, empty);
            assertThat(r.usedFallback()).isTrue();
            assertThat(r.fallbackReason()).isEqualTo("no calibration tokens");
            assertThat(r.matrix()).isEqualTo(RtnQuantizer.quantize(w, layout));
            for (float v : QuantTestData.dequantized(r.matrix())) {
                assertThat(Float.isFinite(v)).isTrue();
            }
        }
    }

    @Test
    void allZeroHessianEqualsRtn() {
        Random rnd = new Random(42);
        float[] wv = QuantTestData.weights(rnd, 8, 64);
        QuantLayout layout = QuantLayout.uniform(8, 64, new QuantScheme(2, 32, false, ScaleFormat.F16));
        try (Hessian zeros = new Hessian(64); FloatTensor x = FloatTensor.zeros(10, 64); FloatTensor w = QuantTestData.tensor(wv, 8, 64)) {
            zeros.add(x);
            GptqResult r = new GptqQuantizer().quantize(w, layout, zeros);
            assertThat(r.fallbackReason()).startsWith("all-zero Hessian");
            assertThat(r.matrix()).isEqualTo(RtnQuantizer.quantize(w, layout));
        }
    }

    @Test
    void diagonalHessianPropagatesNoErrorSoGptqEqualsRtnExactly() {
        Random rnd = new Random(43);
        int cols = 64;
        float[] wv = QuantTestData.weights(rnd, 8, cols);
        float[] x = new float[300 * cols];
        for (int t = 0; t < 300; t++) {
            x[t * cols + t % cols] = (float) rnd.nextGaussian(); // one active input per row: H is diagonal
        }
        QuantLayout layout = QuantLayout.uniform(8, cols, new QuantScheme(3, 16, false, ScaleFormat.F16));
        try (Hessian h = hessianOf(x, 300, cols); FloatTensor w = QuantTestData.tensor(wv, 8, cols)) {
            GptqResult r = new GptqQuantizer(0.01, 16, HostAllocator.root()).quantize(w, layout, h);
            assertThat(r.usedFallback()).isFalse();
            assertThat(r.matrix()).isEqualTo(RtnQuantizer.quantize(w, layout));
        }
    }

    @Test
    void deadInputColumnsAreZeroedAsInTheReference() {
        Problem p = problem(44, 16, 64, 300);
        for (int t = 0; t < 300; t++) {
            p.x()[t * 64 + 5] = 0f;
            p.x()[t * 64 + 40] = 0f;
        }
        QuantLayout layout = QuantLayout.uniform(16, 64, new QuantScheme(4, 32, false, ScaleFormat.F16));
        try (Hessian h = hessianOf(p.x(), 300, 64); FloatTensor w = QuantTestData.tensor(p.w(), 16, 64)) {
            GptqResult r = new GptqQuantizer().quantize(w, layout, h);
            assertThat(r.deadColumns()).isEqualTo(2);
            float[] deq = QuantTestData.dequantized(r.matrix());
            for (int row = 0; row < 16; row++) {
                assertThat(deq[row * 64 + 5]).isZero();
                assertThat(deq[row * 64 + 40]).isZero();
            }
            for (float v : deq) {
                assertThat(Float.isFinite(v)).isTrue();
            }
        }
    }

    @Test
    void runsAreByteIdenticalAndOneFactorServesGateAndUp() {
        Problem p = problem(45, 32, 128, 500);
        float[] up = QuantTestData.weights(new Random(46), 32, 128);
        QuantLayout layout = QuantLayout.uniform(32, 128, new QuantScheme(2, 64, false, ScaleFormat.F16));
        try (Hessian h = hessianOf(p.x(), 500, 128); FloatTensor gate = QuantTestData.tensor(p.w(), 32, 128);
             FloatTensor upT = QuantTestData.tensor(up, 32, 128)) {
            GptqQuantizer q = new GptqQuantizer();
            QuantizedMatrix first = q.quantize(gate, layout, h).matrix();
            QuantizedMatrix second = q.quantize(gate, layout, h).matrix();
            assertThat(second.codes()).isEqualTo(first.codes());
            assertThat(second.scales()).isEqualTo(first.scales());
            assertThat(second.zeros()).isEqualTo(first.zeros());
            try (InverseHessian f = q.factor(h)) {
                assertThat(q.quantize(gate, layout, f).matrix()).isEqualTo(first);
                assertThat(q.quantize(upT, layout, f).matrix()).isEqualTo(q.quantize(upT, layout, h).matrix());
            }
        }
    }

    @Test
    void indefiniteHessianRaisesTheDamping() {
        // 10 tokens in 64 dimensions: H has rank 10, so without damping the Cholesky factorization breaks down
        Problem p = problem(47, 8, 64, 10);
        try (Hessian h = hessianOf(p.x(), 10, 64); FloatTensor w = QuantTestData.tensor(p.w(), 8, 64);
             InverseHessian f = new GptqQuantizer(0.0, 128, HostAllocator.root()).factor(h)) {
            assertThat(f.isFallback()).isFalse();
            assertThat(f.dampFraction()).isEqualTo(GptqQuantizer.DEFAULT_DAMP);
            GptqResult r = new GptqQuantizer(0.0, 128, HostAllocator.root())
                    .quantize(w, QuantLayout.uniform(8, 64, new QuantScheme(3, 32, false, ScaleFormat.F16)), f);
            assertThat(r.dampFraction()).isEqualTo(GptqQuantizer.DEFAULT_DAMP);
            for (float v : QuantTestData.dequantized(r.matrix())) {
                assertThat(Float.isFinite(v)).isTrue();
            }
        }
    }

    @Test
    void badParametersAreClearErrors() {
        assertThatThrownBy(() -> new GptqQuantizer(-0.1)).hasMessage("damp must be a fraction of mean(diag H) in [0, 1], got -0.1");
        assertThatThrownBy(() -> new GptqQuantizer(Double.NaN)).hasMessage("damp must be a fraction of mean(diag H) in [0, 1], got NaN");
        assertThatThrownBy(() -> new GptqQuantizer(0.01, 0, HostAllocator.root())).hasMessage("GPTQ block size must be positive, got 0");
        try (Hessian h = new Hessian(8); FloatTensor w = FloatTensor.zeros(4, 16)) {
            assertThatThrownBy(() -> new GptqQuantizer().quantize(w, QuantLayout.uniform(4, 16, new QuantScheme(4, 8, true, ScaleFormat.F16)), h))
                    .hasMessage("Hessian of dimension 8 does not match the 16 input columns of the weights");
        }
    }
}
