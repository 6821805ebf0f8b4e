package io.whittle.methods.camera.quant;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.whittle.tensor.FloatFormats;
import org.junit.jupiter.api.Test;

/**
 * The compressed-tensors qparam math. Expected values were computed independently with numpy (float32 arithmetic,
 * float16 scale rounding, np.rint = half to even) from the formulas of calculate_qparams / _quantize.
 */
class QuantSchemeTest {

    private static QuantScheme scheme(int bits, boolean sym) {
        return new QuantScheme(bits, 128, sym, ScaleFormat.F16);
    }

    private static void check(QuantScheme s, float min, float max, float expScale, int expZero, float[] xs, int[] expQ, float[] expDeq) {
        QuantScheme.GroupParams p = s.params(min, max);
        assertThat(p.scale()).isEqualTo(expScale);
        assertThat(p.zero()).isEqualTo(expZero);
        for (int i = 0; i < xs.length; i++) {
            int q = s.quantize(xs[i], p.scale(), p.zero());
            assertThat(q).as("q(%s)", xs[i]).isEqualTo(expQ[i]);
            assertThat(QuantScheme.dequantize(q, p.scale(), p.zero())).as("deq(%s)", xs[i]).isEqualTo(expDeq[i]);
        }
    }

    @Test
    void ranges() {
        assertThat(scheme(4, true).qMin()).isEqualTo(-8);
        assertThat(scheme(4, true).qMax()).isEqualTo(7);
        assertThat(scheme(2, true).qMin()).isEqualTo(-2);
        assertThat(scheme(2, true).qMax()).isEqualTo(1);
        assertThat(scheme(1, true).qMin()).isEqualTo(-1);
        assertThat(scheme(1, true).qMax()).isEqualTo(0);
        assertThat(scheme(8, true).qMin()).isEqualTo(-128);
        assertThat(scheme(8, true).qMax()).isEqualTo(127);
    }

    @Test
    void asymmetricInt4() {
        // scale = 3/15 = 0.2 -> f16 0.199951171875; zero = rint(-8 + 1/scale) = rint(-2.9988) = -3
        check(scheme(4, false), -1f, 2f, 0.199951171875f, -3,
                new float[]{-1f, 2f, 0.5f, 0f, -0.2f, 0.1f},
                new int[]{-8, 7, 0, -3, -4, -2},
                new float[]{-0.999755859375f, 1.99951171875f, 0.599853515625f, 0f, -0.199951171875f, 0.199951171875f});
    }

    @Test
    void symmetricInt4DividesAbsMaxBySevenAndAHalf() {
        // scale = 3 / 7.5 = 0.4 -> f16 0.39990234375 (not 3/7); -3/scale = -7.502 rounds to -8, +3 clamps to 7
        check(scheme(4, true), -3f, 3f, 0.39990234375f, 0,
                new float[]{-3f, 3f, 0.5f, 0f, -0.2f, 0.1f},
                new int[]{-8, 7, 1, 0, -1, 0},
                new float[]{-3.19921875f, 2.79931640625f, 0.39990234375f, 0f, -0.39990234375f, 0f});
    }

    @Test
    void int2AndInt3AndInt1() {
        check(scheme(2, false), -0.3f, 0.7f, 0.333251953125f, -1,
                new float[]{-0.3f, 0.7f, 0.5f, 0f, -0.2f, 0.1f},
                new int[]{-2, 1, 1, -1, -2, -1},
                new float[]{-0.333251953125f, 0.66650390625f, 0.66650390625f, 0f, -0.333251953125f, 0f});
        // symmetric INT2: absmax / 1.5
        check(scheme(2, true), -0.3f, 0.7f, 0.466552734375f, 0,
                new float[]{-0.3f, 0.7f, 0.5f, 0f, -0.2f, 0.1f},
                new int[]{-1, 1, 1, 0, 0, 0},
                new float[]{-0.466552734375f, 0.466552734375f, 0.466552734375f, 0f, 0f, 0f});
        check(scheme(3, false), -0.05f, 0.11f, 0.022857666015625f, -2,
                new float[]{-0.05f, 0.11f, 0.5f, 0f, -0.2f, 0.1f},
                new int[]{-4, 3, 3, -2, -4, 2},
                new float[]{-0.04571533203125f, 0.114288330078125f, 0.114288330078125f, 0f, -0.04571533203125f, 0.0914306640625f});
        // 1 bit, asymmetric: range [-1, 0], scale = max - min; 0 stays representable so the levels are {0, scale}
        check(scheme(1, false), -0.5f, 1.5f, 2f, -1,
                new float[]{-0.5f, 1.5f, 0.5f, 0f},
                new int[]{-1, 0, -1, -1},
                new float[]{0f, 2f, 0f, 0f});
    }

    @Test
    void minAndMaxAreClampedToIncludeZero() {
        // all-positive group [1, 3]: min becomes 0, scale 3/15, zero = qMin
        check(scheme(4, false), 1f, 3f, 0.199951171875f, -8,
                new float[]{1f, 3f, 0.5f, 0f, -0.2f, 0.1f},
                new int[]{-3, 7, -5, -8, -8, -7},
                new float[]{0.999755859375f, 2.999267578125f, 0.599853515625f, 0f, 0f, 0.199951171875f});
    }

    @Test
    void roundingIsHalfToEven() {
        // absmax 7.5 at 4 bits symmetric: scale exactly 1, so x / scale + zero = x
        QuantScheme s = scheme(4, true);
        QuantScheme.GroupParams p = s.params(-7.5f, 7.5f);
        assertThat(p.scale()).isEqualTo(1f);
        assertThat(s.quantize(2.5f, 1f, 0)).isEqualTo(2);
        assertThat(s.quantize(3.5f, 1f, 0)).isEqualTo(4);
        assertThat(s.quantize(-2.5f, 1f, 0)).isEqualTo(-2);
        assertThat(s.quantize(-0.5f, 1f, 0)).isEqualTo(0);
        assertThat(s.quantize(0.5f, 1f, 0)).isEqualTo(0);
        assertThat(s.quantize(-7.5f, 1f, 0)).isEqualTo(-8);
        assertThat(s.quantize(7.5f, 1f, 0)).isEqualTo(7);
    }

    @Test
    void scaleIsRoundedToItsStorageFormatBeforeQuantizing() {
        QuantScheme f16 = new QuantScheme(4, 128, false, ScaleFormat.F16);
        QuantScheme bf16 = new QuantScheme(4, 128, false, ScaleFormat.BF16);
        float scaleF16 = f16.params(-0.37f, 0.91f).scale();
        float scaleBf16 = bf16.params(-0.37f, 0.91f).scale();
        float raw = (0.91f + 0.37f) / 15f;
        assertThat(scaleF16).isEqualTo(FloatFormats.halfToFloat(FloatFormats.floatToHalf(raw)));
        assertThat(scaleBf16).isEqualTo(FloatFormats.roundToBf16(raw));
        assertThat(scaleF16).isNotEqualTo(scaleBf16);
    }

    @Test
    void allZeroGroupUsesTheFormatEpsilonAndDecodesToZero() {
        QuantScheme asym = new QuantScheme(3, 128, false, ScaleFormat.F16);
        QuantScheme.GroupParams p = asym.params(0f, 0f);
        assertThat(p.scale()).isEqualTo(0x1p-10f);
        assertThat(p.zero()).isEqualTo(-4);
        assertThat(QuantScheme.dequantize(asym.quantize(0f, p.scale(), p.zero()), p.scale(), p.zero())).isEqualTo(0f);
        QuantScheme symBf16 = new QuantScheme(4, 128, true, ScaleFormat.BF16);
        assertThat(symBf16.params(0f, 0f).scale()).isEqualTo(0x1p-7f);
        assertThat(symBf16.params(0f, 0f).zero()).isZero();
    }

    @Test
    void badParametersAreClearErrors() {
        assertThatThrownBy(() -> new QuantScheme(0, 128, false, ScaleFormat.F16))
                .hasMessage("bits must be in 1..8, got 0");
        assertThatThrownBy(() -> new QuantScheme(9, 128, false, ScaleFormat.F16))
                .hasMessage("bits must be in 1..8, got 9");
        assertThatThrownBy(() -> new QuantScheme(4, 0, false, ScaleFormat.F16))
                .hasMessage("group_size must be a positive number of input columns, got 0");
        assertThatThrownBy(() -> scheme(4, false).requireDivides(2000, "hidden_size"))
                .hasMessage("group_size 128 does not divide hidden_size (2000)");
        assertThatThrownBy(() -> scheme(4, true).params(-1e6f, 1e6f))
                .hasMessageContaining("is not finite in F16");
    }
}
