package io.whittle.tensor;

import java.util.Arrays;
import java.util.Optional;

/**
 * Element types of safetensors files, named as the format names them. Whittle computes in fp32; the float
 * types here convert to and from fp32 ({@link FloatFormats}), F8_E4M3 only for reading. The constants are declared
 * in the order of the reference implementation's {@code Dtype} enum (ascending element size); the writer's
 * tensor order depends on it.
 */
public enum DType {
    BOOL("BOOL", 1, false),
    U8("U8", 1, false),
    I8("I8", 1, false),
    F8_E4M3("F8_E4M3", 1, true),
    I16("I16", 2, false),
    F16("F16", 2, true),
    BF16("BF16", 2, true),
    I32("I32", 4, false),
    F32("F32", 4, true),
    F64("F64", 8, true),
    I64("I64", 8, false);

    private final String safetensorsName;
    private final int byteSize;
    private final boolean floatingPoint;

    DType(String safetensorsName, int byteSize, boolean floatingPoint) {
        this.safetensorsName = safetensorsName;
        this.byteSize = byteSize;
        this.floatingPoint = floatingPoint;
    }

    public String safetensorsName() {
        return safetensorsName;
    }

    public int byteSize() {
        return byteSize;
    }

    public boolean isFloatingPoint() {
        return floatingPoint;
    }

    /** True for the types Whittle can write (every type but F8_E4M3, which is read-only). */
    public boolean isWritable() {
        return this != F8_E4M3;
    }

    public static Optional<DType> fromSafetensorsName(String name) {
        return Arrays.stream(values()).filter(d -> d.safetensorsName.equals(name)).findFirst();
    }

    /** Parses the CLI spelling ({@code bf16}, {@code f16}/{@code fp16}, {@code f32}/{@code fp32}). */
    public static DType parseFloatType(String text) {
        return switch (text.toLowerCase()) {
            case "bf16", "bfloat16" -> BF16;
            case "f16", "fp16", "float16" -> F16;
            case "f32", "fp32", "float32" -> F32;
            case "f64", "fp64", "float64" -> F64;
            default -> throw new IllegalArgumentException("unknown float dtype '" + text + "'; expected bf16, f16 or f32");
        };
    }

    /** The dtype that a config.json {@code torch_dtype} names, e.g. {@code bfloat16}. */
    public static Optional<DType> fromTorchDtype(String torchDtype) {
        if (torchDtype == null) {
            return Optional.empty();
        }
        return switch (torchDtype) {
            case "bfloat16" -> Optional.of(BF16);
            case "float16", "half" -> Optional.of(F16);
            case "float32", "float" -> Optional.of(F32);
            default -> Optional.empty();
        };
    }

    public String torchName() {
        return switch (this) {
            case BF16 -> "bfloat16";
            case F16 -> "float16";
            case F32 -> "float32";
            case F64 -> "float64";
            default -> name().toLowerCase();
        };
    }
}
