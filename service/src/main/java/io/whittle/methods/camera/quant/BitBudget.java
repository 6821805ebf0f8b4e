package io.whittle.methods.camera.quant;

import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;

/**
 * Bits per weight of CAMERA-Q output, nominal and achieved.
 *
 * <p>Nominal: payload {@code sum b_k p_k}; overhead per group of g weights: a 16-bit scale, plus a 16-bit zero
 * point when asymmetric (Whittle's packed format) — {@code 16/g (+ 16/g)}. Defaults (3,2,1 at .125,.75,.125,
 * g = 128, asymmetric) give 2.0 + 0.125 + 0.125 = 2.25.
 *
 * <p>Achieved: accumulate the quantized matrices actually written ({@link #add}); payload counts each weight at
 * its width after the class-size rounding of {@link BitAllocation#classCounts}, overhead counts the real number
 * of groups (W_down slices whose length is not a multiple of g end in a shorter group, which adds groups), and the
 * permutation/slice tables can be added with {@link #addIndexBits}. Only quantized weights are counted.
 */
public final class BitBudget {

    /** How scale and zero point are stored per group. */
    public enum Storage {
        /** Whittle's packed format: F16 scale, F16 zero point (asymmetric). */
        WHITTLE_PACKED,
        /** compressed-tensors: 16-bit scale, zero point packed at the weight width (asymmetric). */
        COMPRESSED_TENSORS
    }

    private long weights;
    private long payloadBits;
    private long scaleBits;
    private long zeroBits;
    private long indexBits;

    /** Adds one quantized matrix as stored in {@code storage}. */
    public void add(QuantizedMatrix m, Storage storage) {
        QuantLayout l = m.layout();
        weights += (long) l.rows() * l.cols();
        payloadBits += l.payloadBits();
        long cells = m.groupCells();
        scaleBits += 16 * cells;
        if (!l.symmetric()) {
            if (storage == Storage.WHITTLE_PACKED) {
                zeroBits += 16 * cells;
            } else {
                for (int r = 0; r < l.rows(); r++) {
                    for (int g = 0; g < l.groupCount(); g++) {
                        zeroBits += l.scheme(r, g).bits();
                    }
                }
            }
        }
    }

    /** Adds side tables (e.g. 32 bits per micro-expert for the permutation, the slice tables). */
    public void addIndexBits(long bits) {
        indexBits += bits;
    }

    public long weights() {
        return weights;
    }

    public double payloadBpw() {
        return ratio(payloadBits);
    }

    public double scaleBpw() {
        return ratio(scaleBits);
    }

    public double zeroBpw() {
        return ratio(zeroBits);
    }

    public double indexBpw() {
        return ratio(indexBits);
    }

    /** Payload plus scale and zero-point overhead (the figure the paper's 2.25 compares with). */
    public double withOverheadBpw() {
        return ratio(payloadBits + scaleBits + zeroBits);
    }

    /** Everything, including the index tables. */
    public double totalBpw() {
        return ratio(payloadBits + scaleBits + zeroBits + indexBits);
    }

    private double ratio(long bits) {
        return weights == 0 ? 0 : (double) bits / weights;
    }

    /** Nominal payload bits per weight, {@code sum b_k p_k}. */
    public static double nominalPayload(BitAllocation a) {
        return a.payloadBitsPerWeight();
    }

    /** Nominal overhead bits per weight for a 16-bit scale (and 16-bit zero when asymmetric) per group. */
    public static double nominalOverhead(int groupSize, boolean symmetric) {
        if (groupSize < 1) {
            throw new IllegalArgumentException("group_size must be positive, got " + groupSize);
        }
        return (symmetric ? 16.0 : 32.0) / groupSize;
    }

    public static double nominalTotal(BitAllocation a, int groupSize, boolean symmetric) {
        return nominalPayload(a) + nominalOverhead(groupSize, symmetric);
    }

    /** Achieved payload bits per micro-expert weight for class sizes {@code counts} (in {@code a.bits()} order). */
    public static double payloadForCounts(BitAllocation a, long[] counts) {
        int[] b = a.bits();
        if (counts.length != b.length) {
            throw new IllegalArgumentException(b.length + " classes but " + counts.length + " counts");
        }
        long n = 0;
        long bits = 0;
        for (int k = 0; k < b.length; k++) {
            n += counts[k];
            bits += b[k] * counts[k];
        }
        return n == 0 ? 0 : (double) bits / n;
    }

    /** The nominal arithmetic, e.g. {@code 3x0.125 + 2x0.75 + 1x0.125 = 2.0000; + 16/128 scale + 16/128 zero = 2.2500 bpw}. */
    public static String arithmetic(BitAllocation a, int groupSize, boolean symmetric) {
        StringBuilder s = new StringBuilder();
        int[] b = a.bits();
        double[] f = a.fractions();
        for (int k = 0; k < b.length; k++) {
            s.append(k == 0 ? "" : " + ").append(b[k]).append('x').append(trim(f[k]));
        }
        s.append(String.format(Locale.ROOT, " = %.4f; + 16/%d scale", nominalPayload(a), groupSize));
        if (!symmetric) {
            s.append(" + 16/").append(groupSize).append(" zero");
        }
        s.append(String.format(Locale.ROOT, " = %.4f bpw", nominalTotal(a, groupSize, symmetric)));
        return s.toString();
    }

    private static String trim(double v) {
        String t = Double.toString(v);
        return t.endsWith(".0") ? t.substring(0, t.length() - 2) : t;
    }

    /** Achieved figures for report.json. */
    public Map<String, Object> report() {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("quantized_weights", weights);
        m.put("payload_bpw", payloadBpw());
        m.put("scale_bpw", scaleBpw());
        m.put("zero_bpw", zeroBpw());
        m.put("with_overhead_bpw", withOverheadBpw());
        m.put("index_bpw", indexBpw());
        m.put("total_bpw", totalBpw());
        return m;
    }
}
