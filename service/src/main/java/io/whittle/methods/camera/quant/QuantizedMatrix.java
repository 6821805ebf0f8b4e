package io.whittle.methods.camera.quant;

import io.whittle.tensor.FloatTensor;
import io.whittle.tensor.HostAllocator;
import io.whittle.tensor.Shape;
import java.util.Arrays;

/**
 * A quantized weight matrix: signed integer codes {@code q [rows, cols]} (each within its cell's
 * [qMin, qMax]), stored scales {@code [rows, groups]} (exact values of the layout's {@link ScaleFormat}) and,
 * for asymmetric layouts, integer zero points {@code [rows, groups]}. Dequantization is
 * {@code (q - zero) * scale} in fp32 and is exact: it reproduces the quantizer's reconstruction bit for bit.
 * Arrays are owned by this object and never exposed mutable.
 */
public final class QuantizedMatrix {

    private final QuantLayout layout;
    private final byte[] q;
    private final float[] scales;
    private final byte[] zeros; // null when symmetric

    /**
     * Checks every code against its width's range and every zero point against its range; scales must be positive,
     * finite and exactly representable in the layout's scale format.
     */
    public QuantizedMatrix(QuantLayout layout, byte[] q, float[] scales, byte[] zeros) {
        int rows = layout.rows();
        int groups = layout.groupCount();
        if (q.length != (long) rows * layout.cols()) {
            throw new IllegalArgumentException("codes: expected " + rows + "x" + layout.cols() + " values, got " + q.length);
        }
        if (scales.length != (long) rows * groups) {
            throw new IllegalArgumentException("scales: expected " + rows + "x" + groups + " values, got " + scales.length);
        }
        if (layout.symmetric() != (zeros == null)) {
            throw new IllegalArgumentException(layout.symmetric() ? "a symmetric layout has no zero points"
                    : "an asymmetric layout needs zero points");
        }
        if (zeros != null && zeros.length != scales.length) {
            throw new IllegalArgumentException("zero points: expected " + rows + "x" + groups + " values, got " + zeros.length);
        }
        for (int r = 0; r < rows; r++) {
            for (int g = 0; g < groups; g++) {
                QuantScheme s = layout.scheme(r, g);
                float scale = scales[r * groups + g];
                if (!(scale > 0f) || !Float.isFinite(scale) || layout.scaleFormat().round(scale) != scale) {
                    throw new IllegalArgumentException("scale [" + r + ", " + g + "] = " + scale + " is not a positive finite "
                            + layout.scaleFormat() + " value");
                }
                if (zeros != null) {
                    int z = zeros[r * groups + g];
                    if (z < s.qMin() || z > s.qMax()) {
                        throw new IllegalArgumentException("zero point [" + r + ", " + g + "] = " + z + " is outside ["
                                + s.qMin() + ", " + s.qMax() + "] for " + s.bits() + " bits");
                    }
                }
                int base = r * layout.cols();
                for (int c = layout.groupStart(g); c < layout.groupEnd(g); c++) {
                    int v = q[base + c];
                    if (v < s.qMin() || v > s.qMax()) {
                        throw new IllegalArgumentException("code [" + r + ", " + c + "] = " + v + " is outside ["
                                + s.qMin() + ", " + s.qMax() + "] for " + s.bits() + " bits");
                    }
                }
            }
        }
        this.layout = layout;
        this.q = q.clone();
        this.scales = scales.clone();
        this.zeros = zeros == null ? null : zeros.clone();
    }

    /** Takes ownership of arrays the quantizers built and already know to be valid. */
    static QuantizedMatrix trusted(QuantLayout layout, byte[] q, float[] scales, byte[] zeros) {
        return new QuantizedMatrix(layout, q, scales, zeros, true);
    }

    private QuantizedMatrix(QuantLayout layout, byte[] q, float[] scales, byte[] zeros, boolean trusted) {
        this.layout = layout;
        this.q = q;
        this.scales = scales;
        this.zeros = zeros;
    }

    public QuantLayout layout() {
        return layout;
    }

    public int rows() {
        return layout.rows();
    }

    public int cols() {
        return layout.cols();
    }

    public int code(int row, int col) {
        return q[row * layout.cols() + col];
    }

    public float scale(int row, int group) {
        return scales[row * layout.groupCount() + group];
    }

    /** The zero point of a group; 0 for symmetric layouts. */
    public int zero(int row, int group) {
        return zeros == null ? 0 : zeros[row * layout.groupCount() + group];
    }

    /** A copy of the codes, row-major [rows, cols]. */
    public byte[] codes() {
        return q.clone();
    }

    /** A copy of the scales, row-major [rows, groups]. */
    public float[] scales() {
        return scales.clone();
    }

    /** A copy of the zero points, row-major [rows, groups], or null for symmetric layouts. */
    public byte[] zeros() {
        return zeros == null ? null : zeros.clone();
    }

    /** Dequantizes row {@code row} into {@code out} (length cols). */
    public void dequantizeRow(int row, float[] out) {
        int groups = layout.groupCount();
        int base = row * layout.cols();
        for (int g = 0; g < groups; g++) {
            float s = scales[row * groups + g];
            int z = zeros == null ? 0 : zeros[row * groups + g];
            for (int c = layout.groupStart(g); c < layout.groupEnd(g); c++) {
                out[c] = QuantScheme.dequantize(q[base + c], s, z);
            }
        }
    }

    /** The fp32 weights this matrix decodes to, [rows, cols], owned by {@code allocator}. */
    public FloatTensor dequantize(HostAllocator allocator) {
        FloatTensor out = allocator.allocate(Shape.of(layout.rows(), layout.cols()), "dequantized");
        float[] row = new float[layout.cols()];
        for (int r = 0; r < layout.rows(); r++) {
            dequantizeRow(r, row);
            out.copyFrom(row, 0, (long) r * layout.cols(), row.length);
        }
        return out;
    }

    public FloatTensor dequantize() {
        return dequantize(HostAllocator.root());
    }

    /** Bits of integer payload (each weight at its width). */
    public long payloadBits() {
        return layout.payloadBits();
    }

    /** Number of (row, group) cells, i.e. of stored scales (and zero points when asymmetric). */
    public long groupCells() {
        return (long) layout.rows() * layout.groupCount();
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof QuantizedMatrix m && m.layout.equals(layout)
                && Arrays.equals(q, m.q) && Arrays.equals(scales, m.scales) && Arrays.equals(zeros, m.zeros);
    }

    @Override
    public int hashCode() {
        return 31 * Arrays.hashCode(q) + Arrays.hashCode(scales);
    }

    @Override
    public String toString() {
        return "QuantizedMatrix" + layout;
    }
}
