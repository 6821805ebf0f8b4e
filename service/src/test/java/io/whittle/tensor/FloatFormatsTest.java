package io.whittle.tensor;

import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.api.Assertions.assertEquals;

import java.math.BigDecimal;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/**
 * The narrow float conversions against independent references: fixed values from PyTorch, exhaustive round trips
 * over every 16-bit pattern, and round-to-nearest-even checked against an exact (BigDecimal) nearest-value search
 * over the table of representable values.
 */
class FloatFormatsTest {

    // ---------------------------------------------------------------- bf16

    @Test
    void bf16KnownValuesRoundToNearestEven() {
        assertEquals(0x3f80, bf16(1.00390625f), "1 + 2^-8 is a tie between 0x3f80 and 0x3f81: even wins");
        assertEquals(0x3f82, bf16(1.01171875f), "1 + 3 x 2^-8 is a tie between 0x3f81 and 0x3f82: even wins");
        assertEquals(0xc049, bf16(-3.14159f));
        assertEquals(0x7f80, bf16(Float.MAX_VALUE), "overflow rounds to +Inf");
        assertEquals(0xff80, bf16(-Float.MAX_VALUE), "overflow rounds to -Inf");
        assertEquals(0x7FC0, bf16(Float.NaN));
        assertEquals(0x7FC0, bf16(Float.intBitsToFloat(0xFFC12345)), "every NaN becomes the canonical quiet NaN");
        assertEquals(0x7f80, bf16(Float.POSITIVE_INFINITY));
        assertEquals(0xff80, bf16(Float.NEGATIVE_INFINITY));
        assertEquals(0x0000, bf16(0.0f));
        assertEquals(0x8000, bf16(-0.0f));
        assertEquals(0x3f81, bf16(Math.nextUp(1.00390625f)), "just above a tie rounds up");
        assertEquals(0x0001, bf16(Float.intBitsToFloat(0x00010000)), "bf16 subnormals are kept");
        assertThat(FloatFormats.roundToBf16(1.00390625f)).isEqualTo(1.0f);
    }

    @Test
    void bf16RoundTripIsExactForEveryNonNanPattern() {
        for (int bits = 0; bits < 0x10000; bits++) {
            float f = FloatFormats.bf16ToFloat((short) bits);
            assertEquals(Float.intBitsToFloat(bits << 16), f, "widening is a shift, pattern " + hex(bits));
            if (Float.isNaN(f)) {
                assertThat(Float.isNaN(FloatFormats.bf16ToFloat(FloatFormats.floatToBf16(f)))).isTrue();
            } else {
                assertEquals(bits, bf16(f), "round trip of " + hex(bits));
            }
        }
    }

    @Test
    void bf16MatchesExactNearestEvenReferenceOnRandomFloats() {
        SplittableRandom rnd = new SplittableRandom(20240611L);
        for (int i = 0; i < 200_000; i++) {
            float f;
            switch (i % 4) {
                case 0 -> f = Float.intBitsToFloat(rnd.nextInt()); // anything, incl. subnormals, Inf, NaN
                case 1 -> f = Float.intBitsToFloat((rnd.nextInt() & 0xFFFF0000) | 0x8000); // exact ties
                case 2 -> f = Float.intBitsToFloat((rnd.nextInt() & 0xFFFF0000) | 0x8000 + (rnd.nextBoolean() ? 1 : -1));
                default -> f = (float) rnd.nextGaussian();
            }
            if (Float.isNaN(f)) {
                assertEquals(0x7FC0, bf16(f));
                continue;
            }
            assertEquals(referenceBf16(f), bf16(f), "bf16 of " + f + " (" + hex(Float.floatToRawIntBits(f)) + ")");
        }
    }

    /** Nearest bf16 by exact distance to the two truncation neighbours; 2^128 stands in for the Inf above the max. */
    private static int referenceBf16(float f) {
        if (Float.isInfinite(f)) {
            return f > 0 ? 0x7f80 : 0xff80;
        }
        int bits = Float.floatToRawIntBits(f);
        int sign = bits & 0x80000000;
        int magnitude = bits & 0x7FFFFFFF;
        int lo = magnitude >>> 16;
        int hi = lo + 1;
        BigDecimal x = new BigDecimal(Math.abs((double) f));
        BigDecimal vLo = new BigDecimal((double) Float.intBitsToFloat(lo << 16));
        BigDecimal vHi = hi == 0x7f80 ? new BigDecimal(Math.scalb(1.0, 128)) : new BigDecimal((double) Float.intBitsToFloat(hi << 16));
        int pick = nearestEven(x, lo, vLo, hi, vHi);
        return (sign >>> 16) | pick;
    }

    // ---------------------------------------------------------------- f16

    @Test
    void halfToFloatMatchesTheIeeeFormulaForAllPatterns() {
        for (int bits = 0; bits < 0x10000; bits++) {
            float f = FloatFormats.halfToFloat((short) bits);
            int exp = (bits >>> 10) & 0x1F;
            int mant = bits & 0x3FF;
            double sign = (bits & 0x8000) != 0 ? -1 : 1;
            if (exp == 31) {
                if (mant == 0) {
                    assertEquals(sign * Double.POSITIVE_INFINITY, f, 0.0);
                } else {
                    assertThat(Float.isNaN(f)).as("NaN pattern " + hex(bits)).isTrue();
                }
                continue;
            }
            assertEquals(0, Double.compare(sign * halfValue(bits & 0x7FFF), f), "pattern " + hex(bits)); // keeps -0
        }
    }

    @Test
    void halfRoundTripIsExactForEveryNonNanPattern() {
        for (int bits = 0; bits < 0x10000; bits++) {
            float f = FloatFormats.halfToFloat((short) bits);
            short back = FloatFormats.floatToHalf(f);
            if (Float.isNaN(f)) {
                assertThat(isHalfNaN(back)).as("NaN stays NaN: " + hex(bits)).isTrue();
            } else {
                assertEquals(bits, back & 0xFFFF, "round trip of " + hex(bits));
            }
        }
    }

    @Test
    void halfKnownValues() {
        assertEquals(0x7BFF, half(65504f), "largest finite half");
        assertEquals(0x7BFF, half(65519.99f), "just below the overflow midpoint");
        assertEquals(0x7C00, half(65520f), "the midpoint 65520 rounds (to even) up to Inf");
        assertEquals(0xFC00, half(-65520f));
        assertEquals(0x7C00, half(1e10f));
        assertEquals(0x3C00, half(1.0f));
        assertEquals(0x3C00, half(1.00048828125f), "1 + 2^-11 is a tie: even (1.0) wins");
        assertEquals(0x3C02, half(1.00146484375f), "1 + 3 x 2^-11 is a tie: even (0x3C02) wins");
        assertEquals(0x0001, half(0x1p-24f), "smallest subnormal");
        assertEquals(0x0000, half(0x1p-25f), "half the smallest subnormal is a tie with zero: even (0) wins");
        assertEquals(0x0001, half(Math.nextUp(0x1p-25f)));
        assertEquals(0x0002, half(0x1.8p-24f), "1.5 x 2^-24 is a tie between 1 and 2 units: even (2) wins");
        assertEquals(0x0400, half(0x1p-14f), "smallest normal");
        assertEquals(0x0400, half(Math.nextDown(0x1p-14f)), "the largest subnormal + half a unit rounds up to the smallest normal");
        assertEquals(0x8000, half(-0.0f));
        assertEquals(0x8000, half(-1e-30f), "underflow keeps the sign");
        assertThat(isHalfNaN(FloatFormats.floatToHalf(Float.NaN))).isTrue();
    }

    @Test
    void halfMatchesExactNearestEvenReferenceOnRandomFloats() {
        double[] table = new double[0x7C01]; // every finite non-negative half, then 2^16 standing in for Inf
        for (int b = 0; b < 0x7C00; b++) {
            table[b] = halfValue(b);
        }
        table[0x7C00] = 65536.0;
        SplittableRandom rnd = new SplittableRandom(99173L);
        List<Float> inputs = new ArrayList<>();
        for (int i = 0; i < 300_000; i++) {
            switch (i % 6) {
                case 0 -> inputs.add(Float.intBitsToFloat(rnd.nextInt())); // anything
                case 1 -> { // the half range in float exponents 2^-27 .. 2^16, incl. subnormal halves
                    int exp = 100 + rnd.nextInt(44);
                    inputs.add(Float.intBitsToFloat((rnd.nextBoolean() ? 0x80000000 : 0) | (exp << 23) | rnd.nextInt(1 << 23)));
                }
                case 2, 3 -> { // exact midpoints between neighbouring halves, and one float ulp either side
                    int b = rnd.nextInt(0x7C00);
                    float mid = (float) ((table[b] + table[b + 1]) / 2); // 12 significant bits: exact in float
                    float f = switch (rnd.nextInt(3)) {
                        case 0 -> mid;
                        case 1 -> Math.nextUp(mid);
                        default -> Math.nextDown(mid);
                    };
                    inputs.add(rnd.nextBoolean() ? -f : f);
                }
                case 4 -> inputs.add((float) (rnd.nextGaussian() * Math.scalb(1.0, rnd.nextInt(-30, 20))));
                default -> inputs.add(Float.intBitsToFloat(rnd.nextInt(0x00800000))); // float subnormals
            }
        }
        inputs.addAll(List.of(65504f, 65519.99f, 65520f, Math.nextDown(65520f), 65536f, Float.MAX_VALUE, 0x1p-24f, 0x1p-25f,
                Float.MIN_VALUE, 0f, Float.POSITIVE_INFINITY));
        for (float f : inputs) {
            short got = FloatFormats.floatToHalf(f);
            if (Float.isNaN(f)) {
                assertThat(isHalfNaN(got)).isTrue();
                continue;
            }
            assertEquals(referenceHalf(f, table), got & 0xFFFF, "half of " + f + " (" + hex(Float.floatToRawIntBits(f)) + ")");
        }
    }

    /** Nearest half by exact BigDecimal distance between the two table neighbours of |f|, ties to the even pattern. */
    private static int referenceHalf(float f, double[] table) {
        int sign = (Float.floatToRawIntBits(f) >>> 16) & 0x8000;
        double a = Math.abs((double) f);
        if (a >= 65536.0) {
            return sign | 0x7C00;
        }
        int i = Arrays.binarySearch(table, a);
        if (i >= 0) {
            return sign | i; // exactly representable
        }
        int hi = -i - 1;
        int lo = hi - 1;
        return sign | nearestEven(new BigDecimal(a), lo, new BigDecimal(table[lo]), hi, new BigDecimal(table[hi]));
    }

    /** The value of a non-negative finite half pattern, straight from the IEEE 754 binary16 definition. */
    private static double halfValue(int bits) {
        int exp = bits >>> 10;
        int mant = bits & 0x3FF;
        return exp == 0 ? Math.scalb((double) mant, -24) : Math.scalb(1024.0 + mant, exp - 25);
    }

    private static boolean isHalfNaN(short h) {
        return (h & 0x7C00) == 0x7C00 && (h & 0x3FF) != 0;
    }

    // ---------------------------------------------------------------- fp8 e4m3

    @Test
    void fp8E4M3KnownValues() {
        assertEquals(448.0f, FloatFormats.fp8E4M3ToFloat((byte) 0x7E));
        assertThat(Float.isNaN(FloatFormats.fp8E4M3ToFloat((byte) 0x7F))).isTrue();
        assertThat(Float.isNaN(FloatFormats.fp8E4M3ToFloat((byte) 0xFF))).isTrue();
        assertEquals(0x1p-9f, FloatFormats.fp8E4M3ToFloat((byte) 0x01));
        assertEquals(-1.0f, FloatFormats.fp8E4M3ToFloat((byte) 0xB8));
        assertEquals(-448.0f, FloatFormats.fp8E4M3ToFloat((byte) 0xFE));
        assertEquals(0x1p-6f, FloatFormats.fp8E4M3ToFloat((byte) 0x08), "smallest normal");
        assertEquals(0, Float.compare(-0.0f, FloatFormats.fp8E4M3ToFloat((byte) 0x80)));
    }

    @Test
    void fp8E4M3AllCodesMatchTheFormula() {
        for (int code = 0; code < 256; code++) {
            float got = FloatFormats.fp8E4M3ToFloat((byte) code);
            int e = (code >>> 3) & 0xF;
            int m = code & 7;
            if (e == 15 && m == 7) {
                assertThat(Float.isNaN(got)).as("code " + hex(code)).isTrue();
                continue;
            }
            // OCP E4M3FN: bias 7, subnormals 0.m x 2^-6, no infinities
            double magnitude = e == 0 ? (m / 8.0) * Math.pow(2, -6) : (1 + m / 8.0) * Math.pow(2, e - 7);
            double expected = (code & 0x80) != 0 ? -magnitude : magnitude;
            assertEquals(0, Double.compare(expected, got), "code " + hex(code));
        }
    }

    // ---------------------------------------------------------------- helpers

    /** Picks the nearer of two neighbouring patterns; on an exact tie the even pattern. */
    private static int nearestEven(BigDecimal x, int lo, BigDecimal vLo, int hi, BigDecimal vHi) {
        int cmp = x.subtract(vLo).compareTo(vHi.subtract(x));
        if (cmp < 0) {
            return lo;
        }
        if (cmp > 0) {
            return hi;
        }
        return (lo & 1) == 0 ? lo : hi;
    }

    private static int bf16(float f) {
        return FloatFormats.floatToBf16(f) & 0xFFFF;
    }

    private static int half(float f) {
        return FloatFormats.floatToHalf(f) & 0xFFFF;
    }

    private static String hex(int v) {
        return "0x" + Integer.toHexString(v);
    }
}
