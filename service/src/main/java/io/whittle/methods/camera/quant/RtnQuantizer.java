package io.whittle.methods.camera.quant;

import io.whittle.tensor.FloatTensor;

/**
 * Round-to-nearest quantization: for every row and every group of the layout, qparams from the group's min/max
 * ({@link QuantScheme#params}) and each weight rounded independently. The baseline GPTQ must beat, and GPTQ's
 * fallback for experts without calibration tokens.
 */
public final class RtnQuantizer {

    private RtnQuantizer() {
    }

    /** Quantizes {@code weights} [rows, cols] under {@code layout}. Throws on a shape mismatch or a non-finite weight. */
    public static QuantizedMatrix quantize(FloatTensor weights, QuantLayout layout) {
        requireShape(weights, layout);
        int rows = layout.rows();
        int cols = layout.cols();
        int groups = layout.groupCount();
        byte[] q = new byte[rows * cols];
        float[] scales = new float[rows * groups];
        byte[] zeros = layout.symmetric() ? null : new byte[rows * groups];
        float[] row = new float[cols];
        for (int r = 0; r < rows; r++) {
            weights.copyTo((long) r * cols, row, 0, cols);
            requireFinite(row, r);
            for (int g = 0; g < groups; g++) {
                quantizeGroup(layout, r, g, row, q, scales, zeros);
            }
        }
        return QuantizedMatrix.trusted(layout, q, scales, zeros);
    }

    /** Quantizes group {@code g} of row {@code r} (values in {@code row}); shared with GPTQ's fallback path. */
    static void quantizeGroup(QuantLayout layout, int r, int g, float[] row, byte[] q, float[] scales, byte[] zeros) {
        QuantScheme s = layout.scheme(r, g);
        int from = layout.groupStart(g);
        int to = layout.groupEnd(g);
        float min = Float.POSITIVE_INFINITY;
        float max = Float.NEGATIVE_INFINITY;
        for (int c = from; c < to; c++) {
            min = Math.min(min, row[c]);
            max = Math.max(max, row[c]);
        }
        QuantScheme.GroupParams p = s.params(min, max);
        int cell = r * layout.groupCount() + g;
        scales[cell] = p.scale();
        if (zeros != null) {
            zeros[cell] = (byte) p.zero();
        }
        int base = r * layout.cols();
        for (int c = from; c < to; c++) {
            q[base + c] = (byte) s.quantize(row[c], p.scale(), p.zero());
        }
    }

    static void requireShape(FloatTensor weights, QuantLayout layout) {
        if (weights.shape().rank() != 2 || weights.shape().dim(0) != layout.rows() || weights.shape().dim(1) != layout.cols()) {
            throw new IllegalArgumentException("weights " + weights.shape() + " do not match the layout's [" + layout.rows()
                    + ", " + layout.cols() + "]");
        }
    }

    static void requireFinite(float[] row, int r) {
        for (int c = 0; c < row.length; c++) {
            if (!Float.isFinite(row[c])) {
                throw new IllegalArgumentException("weight [" + r + ", " + c + "] is " + row[c] + "; cannot quantize non-finite weights");
            }
        }
    }
}
