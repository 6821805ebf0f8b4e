package io.whittle.methods.camera.quant;

import java.util.Arrays;

/**
 * How a weight matrix W [rows, cols] (cols = the input dimension) is tiled into quantization groups and widths.
 *
 * <p>The columns are split into contiguous <em>segments</em>; groups are runs of {@code groupSize} columns that
 * restart at every segment start, so a group never crosses a segment boundary. When a segment's length is not a
 * multiple of {@code groupSize} its <em>last group is shorter</em> (this is what CAMERA-Q needs for W_down, whose
 * input columns are micro-experts sorted into bit classes of data-dependent sizes). Each (row, segment) cell has
 * one width. The two CAMERA-Q shapes are:
 * <ul>
 *   <li>{@link #rowBits}: one segment, a width per row (W_gate / W_up: a row is a micro-expert);</li>
 *   <li>{@link #columnSlices}: one segment per bit class, the same width for every row (W_down: a column is a
 *       micro-expert).</li>
 * </ul>
 * Groups are numbered left to right across all segments; a matrix has {@code rows x groupCount()} scales.
 */
public final class QuantLayout {

    private final int rows;
    private final int cols;
    private final int groupSize;
    private final boolean symmetric;
    private final ScaleFormat scaleFormat;
    private final int[] segmentStarts; // length segments + 1, last = cols
    private final byte[] bits;         // [rows][segments]
    private final int[] groupStarts;   // length groups + 1, last = cols
    private final int[] groupSegment;  // segment of each group
    private final QuantScheme[] schemes; // by bits, index 1..8

    private QuantLayout(int rows, int cols, int groupSize, boolean symmetric, ScaleFormat scaleFormat,
                        int[] segmentStarts, byte[] bits) {
        this.rows = rows;
        this.cols = cols;
        this.groupSize = groupSize;
        this.symmetric = symmetric;
        this.scaleFormat = scaleFormat;
        this.segmentStarts = segmentStarts;
        this.bits = bits;
        int segments = segmentStarts.length - 1;
        int groups = 0;
        for (int s = 0; s < segments; s++) {
            groups += ceilDiv(segmentStarts[s + 1] - segmentStarts[s], groupSize);
        }
        groupStarts = new int[groups + 1];
        groupSegment = new int[groups];
        int g = 0;
        for (int s = 0; s < segments; s++) {
            for (int c = segmentStarts[s]; c < segmentStarts[s + 1]; c += groupSize) {
                groupStarts[g] = c;
                groupSegment[g] = s;
                g++;
            }
        }
        groupStarts[groups] = cols;
        schemes = new QuantScheme[QuantScheme.MAX_BITS + 1];
        for (byte b : bits) {
            if (schemes[b] == null) {
                schemes[b] = new QuantScheme(b, groupSize, symmetric, scaleFormat);
            }
        }
    }

    /** Every row and column at one width; groups of {@code scheme.groupSize()} (the last may be shorter). */
    public static QuantLayout uniform(int rows, int cols, QuantScheme scheme) {
        requireDims(rows, cols);
        byte[] bits = new byte[rows];
        Arrays.fill(bits, (byte) scheme.bits());
        return new QuantLayout(rows, cols, scheme.groupSize(), scheme.symmetric(), scheme.scaleFormat(),
                new int[]{0, cols}, bits);
    }

    /** One segment spanning all columns, row {@code r} at width {@code rowBits[r]}. */
    public static QuantLayout rowBits(int cols, int[] rowBits, int groupSize, boolean symmetric, ScaleFormat scaleFormat) {
        requireDims(rowBits.length, cols);
        byte[] bits = new byte[rowBits.length];
        for (int r = 0; r < rowBits.length; r++) {
            try {
                QuantScheme.requireBits(rowBits[r]);
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException("row " + r + ": " + e.getMessage());
            }
            bits[r] = (byte) rowBits[r];
        }
        requireScheme(groupSize, scaleFormat);
        return new QuantLayout(rowBits.length, cols, groupSize, symmetric, scaleFormat, new int[]{0, cols}, bits);
    }

    /**
     * Column slices {@code [sliceOffsets[s], sliceOffsets[s+1])} at width {@code sliceBits[s]} for every row;
     * {@code sliceOffsets} starts at 0, is strictly increasing and ends at the column count.
     */
    public static QuantLayout columnSlices(int rows, int[] sliceOffsets, int[] sliceBits, int groupSize, boolean symmetric,
                                           ScaleFormat scaleFormat) {
        if (sliceOffsets.length != sliceBits.length + 1) {
            throw new IllegalArgumentException("column slices: " + sliceBits.length + " widths need "
                    + (sliceBits.length + 1) + " offsets, got " + sliceOffsets.length);
        }
        if (sliceBits.length == 0) {
            throw new IllegalArgumentException("column slices: at least one slice is required");
        }
        if (sliceOffsets[0] != 0) {
            throw new IllegalArgumentException("column slices: offsets must start at 0, got " + Arrays.toString(sliceOffsets));
        }
        for (int s = 0; s < sliceBits.length; s++) {
            if (sliceOffsets[s + 1] <= sliceOffsets[s]) {
                throw new IllegalArgumentException("column slices: offsets must be strictly increasing (no empty slice), got "
                        + Arrays.toString(sliceOffsets));
            }
            try {
                QuantScheme.requireBits(sliceBits[s]);
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException("slice " + s + ": " + e.getMessage());
            }
        }
        int cols = sliceOffsets[sliceBits.length];
        requireDims(rows, cols);
        requireScheme(groupSize, scaleFormat);
        byte[] bits = new byte[rows * sliceBits.length];
        for (int r = 0; r < rows; r++) {
            for (int s = 0; s < sliceBits.length; s++) {
                bits[r * sliceBits.length + s] = (byte) sliceBits[s];
            }
        }
        return new QuantLayout(rows, cols, groupSize, symmetric, scaleFormat, sliceOffsets.clone(), bits);
    }

    private static void requireDims(int rows, int cols) {
        if (rows < 1 || cols < 1) {
            throw new IllegalArgumentException("a quantized matrix needs at least one row and column, got [" + rows + ", " + cols + "]");
        }
        if ((long) rows * cols > Integer.MAX_VALUE - 8) {
            throw new IllegalArgumentException("matrix [" + rows + ", " + cols + "] is too large to quantize in one piece");
        }
    }

    private static void requireScheme(int groupSize, ScaleFormat scaleFormat) {
        new QuantScheme(QuantScheme.MIN_BITS, groupSize, false, scaleFormat); // validates groupSize and format
    }

    private static int ceilDiv(int a, int b) {
        return (a + b - 1) / b;
    }

    public int rows() {
        return rows;
    }

    public int cols() {
        return cols;
    }

    public int groupSize() {
        return groupSize;
    }

    public boolean symmetric() {
        return symmetric;
    }

    public ScaleFormat scaleFormat() {
        return scaleFormat;
    }

    public int segmentCount() {
        return segmentStarts.length - 1;
    }

    public int segmentStart(int segment) {
        return segmentStarts[segment];
    }

    public int segmentEnd(int segment) {
        return segmentStarts[segment + 1];
    }

    public int groupCount() {
        return groupSegment.length;
    }

    public int groupStart(int group) {
        return groupStarts[group];
    }

    public int groupEnd(int group) {
        return groupStarts[group + 1];
    }

    public int groupSegment(int group) {
        return groupSegment[group];
    }

    /** The width of row {@code row} in segment {@code segment}. */
    public int bits(int row, int segment) {
        return bits[row * segmentCount() + segment];
    }

    /** The scheme that quantizes group {@code group} of row {@code row}. */
    public QuantScheme scheme(int row, int group) {
        return schemes[bits(row, groupSegment[group])];
    }

    /** True when every cell has the same width. */
    public boolean isUniform() {
        for (byte b : bits) {
            if (b != bits[0]) {
                return false;
            }
        }
        return true;
    }

    /** The single width of a uniform layout; throws otherwise. */
    public int uniformBits() {
        if (!isUniform()) {
            throw new IllegalStateException("layout mixes widths; it has no single bit width");
        }
        return bits[0];
    }

    /** Payload bits: the sum over all weights of their width. */
    public long payloadBits() {
        long total = 0;
        for (int r = 0; r < rows; r++) {
            for (int s = 0; s < segmentCount(); s++) {
                total += (long) bits(r, s) * (segmentEnd(s) - segmentStart(s));
            }
        }
        return total;
    }

    /** Groups whose last column is before {@code col}, i.e. the index of the group containing {@code col}. */
    public int groupOfColumn(int col) {
        int i = Arrays.binarySearch(groupStarts, col);
        return i >= 0 ? Math.min(i, groupCount() - 1) : -i - 2;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof QuantLayout l && l.rows == rows && l.cols == cols && l.groupSize == groupSize
                && l.symmetric == symmetric && l.scaleFormat == scaleFormat && Arrays.equals(l.segmentStarts, segmentStarts)
                && Arrays.equals(l.bits, bits);
    }

    @Override
    public int hashCode() {
        return ((rows * 31 + cols) * 31 + groupSize) * 31 + Arrays.hashCode(segmentStarts) * 7 + Arrays.hashCode(bits);
    }

    @Override
    public String toString() {
        return "QuantLayout[" + rows + "x" + cols + ", g=" + groupSize + (symmetric ? ", sym" : ", asym") + ", scales "
                + scaleFormat + ", segments " + Arrays.toString(segmentStarts) + "]";
    }
}
