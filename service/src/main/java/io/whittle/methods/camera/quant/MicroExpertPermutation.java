package io.whittle.methods.camera.quant;

import io.whittle.tensor.FloatTensor;
import io.whittle.tensor.HostAllocator;
import io.whittle.tensor.Shape;
import java.util.Arrays;

/**
 * The CAMERA-Q reordering of one expert's micro-experts: a stable sort by bit class, highest width first, ties by
 * original index. Position k of the sorted order holds original micro-expert {@code order()[k]}. The sorted order
 * splits into contiguous slices of one width each ({@link #sliceOffsets()}, {@link #sliceBits()}; only non-empty
 * classes), so the rows of W_gate/W_up and the columns of W_down (the micro-expert dimension of each) are
 * quantized in uniform-width runs and no quantization group mixes widths.
 *
 * <p>Applying the same permutation to the rows of W_gate and W_up and the columns of W_down leaves the expert's
 * SwiGLU output unchanged: it only reorders the sum over micro-experts (CAMERA oracle 4).
 */
public final class MicroExpertPermutation {

    private final int[] order;      // sorted position -> original index
    private final int[] inverse;    // original index -> sorted position
    private final int[] sortedBits; // width at each sorted position
    private final int[] sliceOffsets;
    private final int[] sliceBits;

    private MicroExpertPermutation(int[] order, int[] sortedBits) {
        this.order = order;
        this.sortedBits = sortedBits;
        this.inverse = new int[order.length];
        for (int k = 0; k < order.length; k++) {
            inverse[order[k]] = k;
        }
        int slices = 0;
        for (int k = 0; k < sortedBits.length; k++) {
            if (k == 0 || sortedBits[k] != sortedBits[k - 1]) {
                slices++;
            }
        }
        sliceOffsets = new int[slices + 1];
        sliceBits = new int[slices];
        int s = 0;
        for (int k = 0; k < sortedBits.length; k++) {
            if (k == 0 || sortedBits[k] != sortedBits[k - 1]) {
                sliceOffsets[s] = k;
                sliceBits[s] = sortedBits[k];
                s++;
            }
        }
        sliceOffsets[slices] = sortedBits.length;
    }

    /** The permutation for micro-experts of widths {@code bits[j]} (each in 1..8). */
    public static MicroExpertPermutation byBits(int[] bits) {
        if (bits.length == 0) {
            throw new IllegalArgumentException("an expert needs at least one micro-expert");
        }
        Integer[] idx = new Integer[bits.length];
        for (int j = 0; j < bits.length; j++) {
            try {
                QuantScheme.requireBits(bits[j]);
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException("micro-expert " + j + ": " + e.getMessage());
            }
            idx[j] = j;
        }
        Arrays.sort(idx, (a, b) -> bits[a] != bits[b] ? Integer.compare(bits[b], bits[a]) : Integer.compare(a, b));
        int[] order = new int[bits.length];
        int[] sorted = new int[bits.length];
        for (int k = 0; k < bits.length; k++) {
            order[k] = idx[k];
            sorted[k] = bits[idx[k]];
        }
        return new MicroExpertPermutation(order, sorted);
    }

    /**
     * Rebuilds a stored permutation ({@code order}, e.g. read back from a checkpoint) with the widths of its sorted
     * positions; checks that {@code order} is a permutation and that widths do not increase along it.
     */
    public static MicroExpertPermutation of(int[] order, int[] sortedBits) {
        if (order.length != sortedBits.length || order.length == 0) {
            throw new IllegalArgumentException("permutation of " + order.length + " entries with " + sortedBits.length + " widths");
        }
        boolean[] seen = new boolean[order.length];
        for (int k = 0; k < order.length; k++) {
            int j = order[k];
            if (j < 0 || j >= order.length || seen[j]) {
                throw new IllegalArgumentException("not a permutation of 0.." + (order.length - 1) + ": entry " + k + " is " + j);
            }
            seen[j] = true;
            QuantScheme.requireBits(sortedBits[k]);
            if (k > 0 && sortedBits[k] > sortedBits[k - 1]) {
                throw new IllegalArgumentException("widths must not increase along the sorted order (position " + k + ")");
            }
        }
        return new MicroExpertPermutation(order.clone(), sortedBits.clone());
    }

    public int size() {
        return order.length;
    }

    /** Sorted position k -> original micro-expert index. */
    public int[] order() {
        return order.clone();
    }

    /** Original micro-expert index -> sorted position. */
    public int[] inverse() {
        return inverse.clone();
    }

    /** Width at each sorted position (non-increasing). */
    public int[] sortedBits() {
        return sortedBits.clone();
    }

    /** Slice boundaries in sorted order: slice s is [offsets[s], offsets[s+1]); starts at 0, ends at size(). */
    public int[] sliceOffsets() {
        return sliceOffsets.clone();
    }

    /** Width of each slice, strictly decreasing. */
    public int[] sliceBits() {
        return sliceBits.clone();
    }

    public boolean isIdentity() {
        for (int k = 0; k < order.length; k++) {
            if (order[k] != k) {
                return false;
            }
        }
        return true;
    }

    /** Layout for a sorted W_gate/W_up [size, inputCols]: each row at its micro-expert's width. */
    public QuantLayout rowLayout(int inputCols, int groupSize, boolean symmetric, ScaleFormat scaleFormat) {
        return QuantLayout.rowBits(inputCols, sortedBits, groupSize, symmetric, scaleFormat);
    }

    /** Layout for a sorted W_down [outputRows, size]: one column slice per width class. */
    public QuantLayout columnLayout(int outputRows, int groupSize, boolean symmetric, ScaleFormat scaleFormat) {
        return QuantLayout.columnSlices(outputRows, sliceOffsets, sliceBits, groupSize, symmetric, scaleFormat);
    }

    /** Rows of {@code w} [size, cols] in sorted order: out[k] = w[order[k]]. */
    public FloatTensor permuteRows(FloatTensor w, HostAllocator allocator) {
        return gatherRows(w, order, allocator);
    }

    /** Inverse of {@link #permuteRows}: out[order[k]] = w[k]. */
    public FloatTensor unpermuteRows(FloatTensor w, HostAllocator allocator) {
        return gatherRows(w, inverse, allocator);
    }

    /** Columns of {@code w} [rows, size] in sorted order: out[:, k] = w[:, order[k]]. */
    public FloatTensor permuteColumns(FloatTensor w, HostAllocator allocator) {
        return gatherColumns(w, order, allocator);
    }

    /** Inverse of {@link #permuteColumns}. */
    public FloatTensor unpermuteColumns(FloatTensor w, HostAllocator allocator) {
        return gatherColumns(w, inverse, allocator);
    }

    private FloatTensor gatherRows(FloatTensor w, int[] from, HostAllocator allocator) {
        if (w.shape().rank() != 2 || w.shape().dim(0) != order.length) {
            throw new IllegalArgumentException("expected [" + order.length + ", cols] (rows = micro-experts), got " + w.shape());
        }
        long cols = w.shape().dim(1);
        FloatTensor out = allocator.allocate(w.shape(), "permuted");
        for (int k = 0; k < from.length; k++) {
            out.copyFrom(w, from[k] * cols, k * cols, cols);
        }
        return out;
    }

    private FloatTensor gatherColumns(FloatTensor w, int[] from, HostAllocator allocator) {
        if (w.shape().rank() != 2 || w.shape().dim(1) != order.length) {
            throw new IllegalArgumentException("expected [rows, " + order.length + "] (columns = micro-experts), got " + w.shape());
        }
        int rows = Math.toIntExact(w.shape().dim(0));
        int cols = order.length;
        FloatTensor out = allocator.allocate(Shape.of(rows, cols), "permuted");
        float[] src = new float[cols];
        float[] dst = new float[cols];
        for (int r = 0; r < rows; r++) {
            w.copyTo((long) r * cols, src, 0, cols);
            for (int k = 0; k < cols; k++) {
                dst[k] = src[from[k]];
            }
            out.copyFrom(dst, 0, (long) r * cols, cols);
        }
        return out;
    }
}
