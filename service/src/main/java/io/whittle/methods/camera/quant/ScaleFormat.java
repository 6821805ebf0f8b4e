package io.whittle.methods.camera.quant;

import io.whittle.tensor.DType;
import io.whittle.tensor.FloatFormats;

/**
 * The precision a quantization scale is stored in. Scales are rounded to this precision <em>before</em> any weight
 * is quantized, so that dequantizing with the stored scale reproduces the quantizer's own reconstruction exactly.
 */
public enum ScaleFormat {
    /** IEEE half: CAMERA-Q's own packed format (the 2.25-bit budget counts a 16-bit scale and zero per group). */
    F16(DType.F16, 0x1p-10f),
    /** bfloat16: compressed-tensors stores scales in the weight dtype, which is bf16 for every family we target. */
    BF16(DType.BF16, 0x1p-7f);

    private final DType dtype;
    private final float eps;

    ScaleFormat(DType dtype, float eps) {
        this.dtype = dtype;
        this.eps = eps;
    }

    /** The safetensors dtype scales are written as. */
    public DType dtype() {
        return dtype;
    }

    /**
     * {@code torch.finfo(dtype).eps}: compressed-tensors replaces a zero scale (an all-zero group) by this value
     * ({@code calculate_qparams}, step 5) so that no division by zero happens.
     */
    public float eps() {
        return eps;
    }

    /** Rounds an fp32 value to the nearest value of this format (ties to even), returned as fp32. */
    public float round(float v) {
        return switch (this) {
            case F16 -> FloatFormats.halfToFloat(FloatFormats.floatToHalf(v));
            case BF16 -> FloatFormats.roundToBf16(v);
        };
    }

    /** The format whose dtype is {@code dtype} (F16 or BF16). */
    public static ScaleFormat of(DType dtype) {
        return switch (dtype) {
            case F16 -> F16;
            case BF16 -> BF16;
            default -> throw new IllegalArgumentException("scales can be stored as F16 or BF16, not " + dtype);
        };
    }
}
