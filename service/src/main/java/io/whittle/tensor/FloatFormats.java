package io.whittle.tensor;

/**
 * Conversions between fp32 and the narrow float formats of checkpoints. Widening is exact; narrowing rounds
 * to nearest, ties to even, as PyTorch does ({@code c10::BFloat16} and IEEE half).
 */
public final class FloatFormats {

    private FloatFormats() {
    }

    public static float bf16ToFloat(short bits) {
        return Float.intBitsToFloat((bits & 0xFFFF) << 16);
    }

    /** fp32 to bf16, round-to-nearest-even; NaN becomes the canonical quiet NaN 0x7FC0; overflow rounds to Inf. */
    public static short floatToBf16(float f) {
        if (Float.isNaN(f)) {
            return (short) 0x7FC0;
        }
        int x = Float.floatToRawIntBits(f);
        x += 0x7FFF + ((x >>> 16) & 1);
        return (short) (x >>> 16);
    }

    /** Rounds an fp32 value to the nearest bf16 value, returned as fp32. */
    public static float roundToBf16(float f) {
        return bf16ToFloat(floatToBf16(f));
    }

    public static float halfToFloat(short h) {
        int bits = h & 0xFFFF;
        int sign = (bits & 0x8000) << 16;
        int exp = (bits >>> 10) & 0x1F;
        int mant = bits & 0x3FF;
        if (exp == 0) {
            float v = mant * 0x1p-24f; // subnormal (or zero): mant x 2^-24, exact in fp32
            return sign != 0 ? -v : v;
        }
        if (exp == 31) {
            return Float.intBitsToFloat(sign | 0x7F800000 | (mant << 13));
        }
        return Float.intBitsToFloat(sign | ((exp + 112) << 23) | (mant << 13));
    }

    /** fp32 to IEEE half, round-to-nearest-even; values at or above 65520 in magnitude become Inf. */
    public static short floatToHalf(float f) {
        int x = Float.floatToRawIntBits(f);
        int sign = (x >>> 16) & 0x8000;
        int abs = x & 0x7FFFFFFF;
        if (abs >= 0x7F800000) {
            return (short) (sign | 0x7C00 | (abs > 0x7F800000 ? 0x200 : 0));
        }
        if (abs >= 0x477FF000) { // 65520.0f: the midpoint between 65504 and 2^16 rounds (to even) up to Inf
            return (short) (sign | 0x7C00);
        }
        if (abs < 0x38800000) { // below 2^-14: subnormal half, in units of 2^-24 (scaling by 2^24 is exact)
            int m = (int) Math.rint(Float.intBitsToFloat(abs) * 0x1p24f);
            return (short) (sign | m);
        }
        int half = (((abs >>> 23) - 112) << 10) | ((abs & 0x7FFFFF) >>> 13);
        int rest = abs & 0x1FFF;
        if (rest > 0x1000 || (rest == 0x1000 && (half & 1) == 1)) {
            half++; // a carry out of the mantissa correctly increments the exponent
        }
        return (short) (sign | half);
    }

    /** OCP FP8 E4M3 ("fn": bias 7, no infinities, S.1111.111 is NaN, max 448). */
    public static float fp8E4M3ToFloat(byte bits) {
        int b = bits & 0xFF;
        int sign = b & 0x80;
        int exp = (b >>> 3) & 0xF;
        int mant = b & 0x7;
        float v;
        if (exp == 0xF && mant == 0x7) {
            return Float.NaN;
        } else if (exp == 0) {
            v = mant * 0x1p-9f;
        } else {
            v = (1.0f + mant / 8.0f) * (float) Math.scalb(1.0, exp - 7);
        }
        return sign != 0 ? -v : v;
    }
}
