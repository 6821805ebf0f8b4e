package io.whittle.forward.vision;

/**
 * Bicubic resampling of 8-bit images exactly as Pillow's {@code Image.resize(..., BICUBIC)} computes it (what
 * CLIP's processor uses): a separable convolution with the a = -0.5 cubic kernel whose support widens by the
 * downscale factor (antialiasing), coefficients normalised per output pixel, converted to fixed point with 22
 * fractional bits, and the result rounded and clamped to uint8 after each pass: horizontal first, then
 * vertical. A pass whose size does not change is skipped.
 */
public final class PillowBicubic {

    private static final int PRECISION_BITS = 32 - 8 - 2;
    private static final double SUPPORT = 2.0;

    private PillowBicubic() {
    }

    /** The a = -0.5 cubic convolution kernel. */
    static double kernel(double x) {
        double a = -0.5;
        x = Math.abs(x);
        if (x < 1.0) {
            return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
        }
        if (x < 2.0) {
            return (((x - 5) * x + 8) * x - 4) * a;
        }
        return 0.0;
    }

    /** Per output pixel: first input index, tap count and fixed-point weights. */
    record Taps(int[] first, int[] count, int[][] weights) {
    }

    static Taps taps(int inSize, int outSize) {
        double scale = (double) inSize / outSize;
        double filterScale = Math.max(scale, 1.0);
        double support = SUPPORT * filterScale;
        int[] first = new int[outSize];
        int[] count = new int[outSize];
        int[][] weights = new int[outSize][];
        for (int xx = 0; xx < outSize; xx++) {
            double center = (xx + 0.5) * scale;
            double inv = 1.0 / filterScale;
            int xmin = Math.max(0, (int) (center - support + 0.5));
            int xmax = Math.min(inSize, (int) (center + support + 0.5)) - xmin;
            double[] k = new double[Math.max(0, xmax)];
            double sum = 0;
            for (int x = 0; x < k.length; x++) {
                k[x] = kernel((x + xmin - center + 0.5) * inv);
                sum += k[x];
            }
            int[] fixed = new int[k.length];
            for (int x = 0; x < k.length; x++) {
                double w = sum != 0.0 ? k[x] / sum : k[x];
                // C's (int) cast truncates toward zero, after the +-0.5
                fixed[x] = (int) (w < 0 ? -0.5 + w * (1 << PRECISION_BITS) : 0.5 + w * (1 << PRECISION_BITS));
            }
            first[xx] = xmin;
            count[xx] = k.length;
            weights[xx] = fixed;
        }
        return new Taps(first, count, weights);
    }

    private static int clip8(int acc) {
        int v = acc >> PRECISION_BITS; // arithmetic shift: floor, as Pillow's lookup table index
        return v < 0 ? 0 : Math.min(v, 255);
    }

    /**
     * Resizes {@code channels}-interleaved uint8 pixels (values 0..255, row-major [height][width][channels]) to
     * outWidth x outHeight.
     */
    public static int[] resize(int[] pixels, int width, int height, int channels, int outWidth, int outHeight) {
        if (width < 1 || height < 1 || outWidth < 1 || outHeight < 1 || pixels.length != width * height * channels) {
            throw new IllegalArgumentException("resize: " + pixels.length + " values for a " + width + "x" + height + "x" + channels
                    + " image to " + outWidth + "x" + outHeight);
        }
        int[] cur = pixels;
        int curW = width;
        if (outWidth != width) {
            Taps t = taps(width, outWidth);
            int[] next = new int[outWidth * height * channels];
            for (int y = 0; y < height; y++) {
                for (int xx = 0; xx < outWidth; xx++) {
                    int[] w = t.weights()[xx];
                    int x0 = t.first()[xx];
                    for (int c = 0; c < channels; c++) {
                        int acc = 1 << (PRECISION_BITS - 1);
                        for (int x = 0; x < w.length; x++) {
                            acc += cur[(y * curW + x0 + x) * channels + c] * w[x];
                        }
                        next[(y * outWidth + xx) * channels + c] = clip8(acc);
                    }
                }
            }
            cur = next;
            curW = outWidth;
        }
        if (outHeight != height) {
            Taps t = taps(height, outHeight);
            int[] next = new int[curW * outHeight * channels];
            for (int yy = 0; yy < outHeight; yy++) {
                int[] w = t.weights()[yy];
                int y0 = t.first()[yy];
                for (int x = 0; x < curW; x++) {
                    for (int c = 0; c < channels; c++) {
                        int acc = 1 << (PRECISION_BITS - 1);
                        for (int y = 0; y < w.length; y++) {
                            acc += cur[((y0 + y) * curW + x) * channels + c] * w[y];
                        }
                        next[(yy * curW + x) * channels + c] = clip8(acc);
                    }
                }
            }
            cur = next;
        }
        return cur == pixels ? pixels.clone() : cur;
    }
}
