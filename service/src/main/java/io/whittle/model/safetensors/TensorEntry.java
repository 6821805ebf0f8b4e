package io.whittle.model.safetensors;

import io.whittle.tensor.DType;
import io.whittle.tensor.Shape;

/**
 * One tensor of a safetensors file: its dtype, shape and byte range, where {@code begin}/{@code end} are the
 * header's {@code data_offsets} (relative to the start of the data section) and {@code fileOffset} the absolute
 * position of byte {@code begin} in the file.
 */
public record TensorEntry(String name, DType dtype, Shape shape, long begin, long end, long fileOffset) {

    public long byteLength() {
        return end - begin;
    }

    public long numel() {
        return shape.numel();
    }
}
