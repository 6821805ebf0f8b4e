package io.whittle.tensor;

/**
 * An fp32 tensor owned by a compute backend: host memory ({@link FloatTensor}) for the CPU backend, device memory
 * for a GPU backend. Tensors of different backends never mix; they cross only through the backend's explicit
 * upload and download. Views share their owner's memory and never free it.
 */
public interface Tensor extends AutoCloseable {

    Shape shape();

    default long numel() {
        return shape().numel();
    }

    /** Rows of the matrix view (all dimensions but the last). */
    default int rows() {
        return Math.toIntExact(shape().rows());
    }

    /** Columns of the matrix view (the last dimension). */
    default int cols() {
        return Math.toIntExact(shape().cols());
    }

    /** A view of {@code shape.numel()} elements starting at element {@code offset}. */
    Tensor view(long offset, Shape shape);

    default Tensor reshape(Shape shape) {
        if (shape.numel() != numel()) {
            throw new IllegalArgumentException("cannot reshape " + shape() + " to " + shape);
        }
        return view(0, shape);
    }

    default Tensor reshape(long... dims) {
        return reshape(Shape.of(dims));
    }

    /** Rows [from, from + count) of the matrix view, as a [count, cols] view. */
    default Tensor rowSlice(long from, long count) {
        long c = shape().cols();
        return view(from * c, Shape.of(count, c));
    }

    @Override
    void close();
}
