package io.whittle.testing;

import java.util.Random;

/** Shared helpers of the numerical tests: fresh random inputs and the relative error every parity check uses. */
public final class Numerics {

    private Numerics() {
    }

    /** n standard-normal floats. */
    public static float[] gaussian(Random random, int n) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = (float) random.nextGaussian();
        }
        return a;
    }

    /** ||out - ref|| / ||ref|| over the first ref.length elements. */
    public static double relErr(float[] out, double[] ref) {
        double num = 0;
        double den = 0;
        for (int i = 0; i < ref.length; i++) {
            num += (out[i] - ref[i]) * (out[i] - ref[i]);
            den += ref[i] * ref[i];
        }
        return Math.sqrt(num / den);
    }
}
