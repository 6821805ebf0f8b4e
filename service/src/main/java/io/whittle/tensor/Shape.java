package io.whittle.tensor;

import java.util.Arrays;

/** An immutable tensor shape (row-major). A rank-0 shape is a scalar with one element. */
public final class Shape {

    private final long[] dims;

    private Shape(long[] dims) {
        for (long d : dims) {
            if (d < 0) {
                throw new IllegalArgumentException("negative dimension in shape " + Arrays.toString(dims));
            }
        }
        this.dims = dims;
    }

    public static Shape of(long... dims) {
        return new Shape(dims.clone());
    }

    public static Shape of(int... dims) {
        return new Shape(Arrays.stream(dims).asLongStream().toArray());
    }

    public int rank() {
        return dims.length;
    }

    public long dim(int i) {
        return dims[i < 0 ? dims.length + i : i];
    }

    public long[] dims() {
        return dims.clone();
    }

    /** Number of elements; throws on overflow so a corrupt header cannot wrap to a small size. */
    public long numel() {
        long n = 1;
        for (long d : dims) {
            n = Math.multiplyExact(n, d);
        }
        return n;
    }

    /** Rows of a matrix view: the product of every dimension but the last (1 for a vector or a scalar). */
    public long rows() {
        long n = 1;
        for (int i = 0; i < dims.length - 1; i++) { // not numel / cols: a [5, 0] tensor still has 5 rows
            n = Math.multiplyExact(n, dims[i]);
        }
        return n;
    }

    /** Columns of a matrix view: the last dimension. */
    public long cols() {
        return dims.length == 0 ? 1 : dims[dims.length - 1];
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof Shape s && Arrays.equals(dims, s.dims);
    }

    @Override
    public int hashCode() {
        return Arrays.hashCode(dims);
    }

    @Override
    public String toString() {
        return Arrays.toString(dims);
    }
}
