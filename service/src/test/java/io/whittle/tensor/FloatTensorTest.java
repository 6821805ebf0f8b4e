package io.whittle.tensor;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/** Off-heap tensors and their allocator: indexing, views, bounds, lifetime and memory accounting. */
class FloatTensorTest {

    @Test
    void elementAccessViewsAndCopiesShareOrOwnMemoryAsDocumented() {
        float[] v = random(24, 1);
        try (HostAllocator alloc = HostAllocator.root().newChild("t", Long.MAX_VALUE);
             FloatTensor t = alloc.allocate(Shape.of(4, 6), "t")) {
            t.copyFrom(v, 0, 0, v.length);
            assertArrayEquals(v, t.toArray());
            assertEquals(v[2 * 6 + 5], t.get(2, 5));
            assertEquals(4, t.rows());
            assertEquals(6, t.cols());

            FloatTensor rows = t.rowSlice(1, 2);
            assertEquals(Shape.of(2, 6), rows.shape());
            assertThat(rows.isView()).isTrue();
            assertArrayEquals(java.util.Arrays.copyOfRange(v, 6, 18), rows.toArray());
            rows.set(0, 0, 42f); // writes through to the owner
            assertEquals(42f, t.get(1, 0));

            FloatTensor flat = t.reshape(24);
            FloatTensor cube = t.reshape(2, 3, 4);
            assertEquals(t.get(3, 5), flat.get(23));
            assertEquals(t.get(23), cube.get(23));
            assertThatThrownBy(() -> t.reshape(5, 5)).isInstanceOf(IllegalArgumentException.class)
                    .hasMessageContaining("cannot reshape [4, 6] to [5, 5]");

            FloatTensor view = rows.view(6, Shape.of(3)); // a view of a view: row 2, columns 0..2
            assertArrayEquals(new float[] {v[12], v[13], v[14]}, view.toArray());

            t.add(0, 1f);
            assertEquals(v[0] + 1f, t.get(0));
            try (FloatTensor copy = t.copy(alloc)) {
                copy.fill(-1f);
                assertEquals(42f, t.get(1, 0), "a copy owns its memory");
                assertArrayEquals(new float[] {-1f, -1f}, copy.reshape(24).view(0, Shape.of(2)).toArray());
            }
            try (FloatTensor other = alloc.allocate(Shape.of(3))) {
                other.copyFrom(t, 21, 0, 3);
                assertArrayEquals(new float[] {v[21], v[22], v[23]}, other.toArray());
                assertArrayEquals(new float[] {v[18], v[19], v[20], v[21], v[22], v[23]}, t.row(3));
            }
        }
    }

    @Test
    void indicesAndRangesAreChecked() {
        try (FloatTensor t = FloatTensor.zeros(3, 4)) {
            assertThatThrownBy(() -> t.get(12)).isInstanceOf(IndexOutOfBoundsException.class).hasMessageContaining("index 12");
            assertThatThrownBy(() -> t.get(-1)).isInstanceOf(IndexOutOfBoundsException.class);
            assertThatThrownBy(() -> t.get(0, 4)).as("column past the end must not read the next row")
                    .isInstanceOf(IndexOutOfBoundsException.class).hasMessageContaining("(0, 4)");
            assertThatThrownBy(() -> t.set(3, 0, 1f)).isInstanceOf(IndexOutOfBoundsException.class);
            assertThatThrownBy(() -> t.view(10, Shape.of(3))).isInstanceOf(IndexOutOfBoundsException.class)
                    .hasMessageContaining("range [10, 13)");
            assertThatThrownBy(() -> t.rowSlice(2, 2)).isInstanceOf(IndexOutOfBoundsException.class);
            float[] small = new float[2];
            assertThatThrownBy(() -> t.copyTo(0, small, 0, 3)).as("copying past the array end must fail, not corrupt the heap")
                    .isInstanceOf(IndexOutOfBoundsException.class);
            assertThatThrownBy(() -> t.copyFrom(small, 1, 0, 2)).isInstanceOf(IndexOutOfBoundsException.class);
            assertThatThrownBy(() -> FloatTensor.of(Shape.of(2, 2), new float[3])).isInstanceOf(IllegalArgumentException.class)
                    .hasMessageContaining("needs 4 values, got 3");
        }
    }

    @Test
    void viewsFailOnceTheOwnerIsClosedAndCloseIsIdempotent() {
        FloatTensor t = FloatTensor.zeros(8);
        FloatTensor v = t.view(2, Shape.of(4));
        v.close(); // closing a view frees nothing
        assertThat(t.isClosed()).isFalse();
        t.set(0, 1f);
        FloatTensor v2 = t.view(0, Shape.of(2));
        t.close();
        t.close();
        assertThat(v2.isClosed()).isTrue();
        assertThatThrownBy(() -> v2.get(0)).isInstanceOf(IllegalStateException.class).hasMessageContaining("has been closed");
        assertThatThrownBy(() -> t.toArray()).isInstanceOf(IllegalStateException.class);
    }

    @Test
    void allocatorAccountsLimitsAndReportsLeaks() {
        HostAllocator job = HostAllocator.root().newChild("job", 1000);
        HostAllocator step = job.newChild("step", Long.MAX_VALUE);
        FloatTensor a = step.allocate(Shape.of(100), "a"); // 400 bytes
        assertEquals(400, step.allocatedBytes());
        assertEquals(400, job.allocatedBytes(), "a child's allocations count against its parent");
        assertThatThrownBy(() -> step.allocate(Shape.of(200), "too-big")).isInstanceOf(OutOfMemoryError.class)
                .hasMessageContaining("root/job").hasMessageContaining("800 bytes for too-big")
                .hasMessageContaining("limit of 1000 bytes");
        assertEquals(400, step.allocatedBytes(), "a refused allocation is rolled back in the child too");
        assertEquals(400, step.peakBytes(), "and never counts towards its peak");
        assertEquals(400, job.allocatedBytes());
        FloatTensor b = job.allocate(Shape.of(25, 6), "b");
        assertEquals(1000, job.allocatedBytes());
        assertEquals(1000, job.peakBytes());
        a.close();
        assertEquals(0, step.allocatedBytes());
        step.close();
        assertThatThrownBy(() -> step.allocate(Shape.of(1))).isInstanceOf(IllegalStateException.class).hasMessageContaining("is closed");
        assertThatThrownBy(job::close).isInstanceOf(IllegalStateException.class)
                .hasMessageContaining("Memory was leaked by root/job: 600 bytes").hasMessageContaining("b [25, 6]");
        b.close();
        assertEquals(1000, job.peakBytes());
    }

    @Test
    void zeroSizedTensorsAreValid() {
        try (HostAllocator alloc = HostAllocator.root().newChild("empty", 0);
             FloatTensor t = alloc.allocate(Shape.of(5, 0))) {
            assertEquals(0, t.numel());
            assertEquals(5, t.rows(), "a [5, 0] tensor has 5 empty rows");
            assertEquals(0, t.cols());
            assertEquals(0, t.toArray().length);
            assertEquals(0, t.rowSlice(4, 1).numel());
        }
    }

    @Test
    void shapeArithmetic() {
        assertEquals(1, Shape.of().numel());
        assertEquals(0, Shape.of().rank());
        assertEquals(1, Shape.of().rows());
        assertEquals(1, Shape.of().cols());
        assertEquals(7, Shape.of(7).rows() * Shape.of(7).cols());
        assertEquals(1, Shape.of(7).rows());
        assertEquals(6, Shape.of(2, 3, 4).rows());
        assertEquals(4, Shape.of(2, 3, 4).dim(-1));
        assertEquals(0, Shape.of(3, 0, 2).numel());
        assertEquals(0, Shape.of(3, 0, 2).rows());
        assertEquals(Shape.of(2L, 3L), Shape.of(2, 3));
        assertEquals(Shape.of(2, 3).hashCode(), Shape.of(2L, 3L).hashCode());
        assertEquals("[2, 3]", Shape.of(2, 3).toString());
        assertThatThrownBy(() -> Shape.of(2, -1)).isInstanceOf(IllegalArgumentException.class).hasMessageContaining("negative");
        assertThatThrownBy(() -> Shape.of(1L << 40, 1L << 40).numel()).isInstanceOf(ArithmeticException.class);
        long[] dims = {2, 3};
        Shape s = Shape.of(dims);
        dims[0] = 9;
        assertEquals(Shape.of(2, 3), s, "shapes are immutable");
        s.dims()[1] = 9;
        assertEquals(Shape.of(2, 3), s);
    }

    @Test
    void dtypeNamesAndSizes() {
        for (DType d : DType.values()) {
            assertEquals(d, DType.fromSafetensorsName(d.safetensorsName()).orElseThrow());
        }
        assertThat(DType.fromSafetensorsName("F8_E5M2")).isEmpty();
        assertEquals(DType.BF16, DType.parseFloatType("bfloat16"));
        assertEquals(DType.F16, DType.parseFloatType("FP16"));
        assertThatThrownBy(() -> DType.parseFloatType("int4")).hasMessageContaining("unknown float dtype 'int4'");
        assertEquals(DType.F16, DType.fromTorchDtype("float16").orElseThrow());
        assertThat(DType.fromTorchDtype(null)).isEmpty();
        assertThat(DType.F8_E4M3.isWritable()).isFalse();
        // declared in the reference Dtype order, which never decreases in element size (the writer relies on it)
        for (int i = 1; i < DType.values().length; i++) {
            assertThat(DType.values()[i].byteSize()).isGreaterThanOrEqualTo(DType.values()[i - 1].byteSize());
        }
    }

    private static float[] random(int n, long seed) {
        SplittableRandom rnd = new SplittableRandom(seed);
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            v[i] = (float) rnd.nextGaussian();
        }
        return v;
    }
}
