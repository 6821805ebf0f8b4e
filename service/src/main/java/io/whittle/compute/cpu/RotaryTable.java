package io.whittle.compute.cpu;

/**
 * cos/sin tables of the default RoPE for the positions in use, computed as transformers does: inverse frequencies
 * {@code 1 / theta^(2i/d)} in fp32, angle {@code position * inv_freq} as an fp32 product, then cos/sin.
 */
final class RotaryTable {

    private final float[][] cos;
    private final float[][] sin;

    private RotaryTable(float[][] cos, float[][] sin) {
        this.cos = cos;
        this.sin = sin;
    }

    static RotaryTable of(int headDim, double theta, int[] positions) {
        int maxPos = 0;
        for (int p : positions) {
            if (p < 0) {
                throw new IllegalArgumentException("negative position " + p);
            }
            maxPos = Math.max(maxPos, p);
        }
        int half = headDim / 2;
        float[] invFreq = new float[half];
        for (int i = 0; i < half; i++) {
            invFreq[i] = (float) (1.0 / Math.pow(theta, (2.0 * i) / headDim));
        }
        float[][] cos = new float[maxPos + 1][];
        float[][] sin = new float[maxPos + 1][];
        for (int p : positions) {
            if (cos[p] == null) {
                float[] c = new float[half];
                float[] s = new float[half];
                for (int i = 0; i < half; i++) {
                    float angle = p * invFreq[i];
                    c[i] = (float) Math.cos(angle);
                    s[i] = (float) Math.sin(angle);
                }
                cos[p] = c;
                sin[p] = s;
            }
        }
        return new RotaryTable(cos, sin);
    }

    float[] cos(int position) {
        return cos[position];
    }

    float[] sin(int position) {
        return sin[position];
    }
}
