package io.whittle.methods.camera.quant;

/**
 * One integer weight-quantization width with the compressed-tensors qparam math
 * ({@code quantization/utils/helpers.py: calculate_range, calculate_qparams}; {@code lifecycle/forward.py}):
 *
 * <pre>
 * range:     q in [qMin, qMax] = [-2^(b-1), 2^(b-1) - 1]          (INT4: [-8, 7], INT2: [-2, 1], INT1: [-1, 0])
 * clamp:     min = min(min, 0), max = max(max, 0)                  (0 is always representable)
 * symmetric: scale = max(|min|, |max|) / ((2^b - 1) / 2)           (INT4: absmax / 7.5), zero = 0
 * asymmetric: scale = (max - min) / (2^b - 1)                      (INT4: / 15)
 *            zero  = round(clamp(qMin - min / scale, qMin, qMax))
 * quantize:  q = round(clamp(x / scale + zero, qMin, qMax))        (round = half to even, as torch.round)
 * dequantize: x' = (q - zero) * scale
 * </pre>
 *
 * Two deliberate details, both so that a stored (q, scale, zero) reproduces the quantizer's reconstruction
 * exactly: the scale is rounded to its storage format ({@link ScaleFormat}) first and the zero point is computed
 * from that stored scale; a scale that is zero after rounding (an all-zero group) becomes {@link ScaleFormat#eps()}
 * as in the reference, and the zero point then comes out as qMin (the reference would compute 0/0 there). All
 * arithmetic is fp32, as in the reference on fp32 weights.
 *
 * @param bits        1..8
 * @param groupSize   contiguous input columns sharing one (scale, zero), at least 1
 * @param symmetric   symmetric (no zero point) or asymmetric
 * @param scaleFormat the precision scales are stored in
 */
public record QuantScheme(int bits, int groupSize, boolean symmetric, ScaleFormat scaleFormat) {

    public static final int MIN_BITS = 1;
    public static final int MAX_BITS = 8;

    public QuantScheme {
        requireBits(bits);
        if (groupSize < 1) {
            throw new IllegalArgumentException("group_size must be a positive number of input columns, got " + groupSize);
        }
        if (scaleFormat == null) {
            throw new IllegalArgumentException("scale format is required");
        }
    }

    /** Throws when {@code bits} is outside 1..8, naming the value. */
    public static void requireBits(int bits) {
        if (bits < MIN_BITS || bits > MAX_BITS) {
            throw new IllegalArgumentException("bits must be in " + MIN_BITS + ".." + MAX_BITS + ", got " + bits);
        }
    }

    /** The same scheme at another width. */
    public QuantScheme withBits(int newBits) {
        return newBits == bits ? this : new QuantScheme(newBits, groupSize, symmetric, scaleFormat);
    }

    public int qMin() {
        return -(1 << (bits - 1));
    }

    public int qMax() {
        return (1 << (bits - 1)) - 1;
    }

    /**
     * Throws unless {@code groupSize} divides {@code dim} (a quantized input dimension), naming the tensor role.
     * compressed-tensors and vLLM need whole groups; call this for every quantized input dimension before work starts.
     */
    public void requireDivides(long dim, String what) {
        if (dim % groupSize != 0) {
            throw new IllegalArgumentException("group_size " + groupSize + " does not divide " + what + " (" + dim + ")");
        }
    }

    /** The stored scale and integer zero point of one group. */
    public record GroupParams(float scale, int zero) {
    }

    /** Qparams of a group whose values span [min, max]. Throws when the scale overflows its storage format. */
    public GroupParams params(float min, float max) {
        float lo = Math.min(min, 0f);
        float hi = Math.max(max, 0f);
        float bitRange = (float) ((1 << bits) - 1);
        float scale;
        if (symmetric) {
            float absMax = Math.max(Math.abs(lo), Math.abs(hi));
            scale = absMax / (bitRange / 2f);
        } else {
            scale = (hi - lo) / bitRange;
        }
        scale = scaleFormat.round(scale);
        if (scale == 0f) {
            scale = scaleFormat.eps();
        }
        if (!Float.isFinite(scale)) {
            throw new IllegalArgumentException("quantization scale of a group spanning [" + min + ", " + max + "] at "
                    + bits + " bits is not finite in " + scaleFormat + " (weights too large or not finite)");
        }
        int zero = 0;
        if (!symmetric) {
            float z = qMin() - lo / scale;
            zero = (int) Math.rint(Math.min(Math.max(z, qMin()), qMax()));
        }
        return new GroupParams(scale, zero);
    }

    /** {@code round(clamp(x / scale + zero, qMin, qMax))}, half to even. */
    public int quantize(float x, float scale, int zero) {
        float v = x / scale + zero;
        v = Math.min(Math.max(v, qMin()), qMax());
        return (int) Math.rint(v);
    }

    /** {@code (q - zero) * scale} in fp32; exact for scales stored in F16 or BF16 and |q - zero| &lt; 2^8. */
    public static float dequantize(int q, float scale, int zero) {
        return (float) (q - zero) * scale;
    }
}
