package io.whittle.methods.camera.quant;

import io.whittle.tensor.FloatTensor;
import io.whittle.tensor.HostAllocator;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * One expert (or shared expert) quantized by CAMERA-Q, in the sorted micro-expert order of its permutation.
 * Row projections (W_gate, W_up: [f, d], a row per micro-expert) use {@link MicroExpertPermutation#rowLayout};
 * column projections (W_down: [d, f], a column per micro-expert) use {@link MicroExpertPermutation#columnLayout}.
 * Projections are keyed by their module name inside the expert ({@code gate_proj}, {@code w1}, ...).
 */
public record QuantizedExpert(MicroExpertPermutation permutation, Map<String, QuantizedMatrix> rowProjections,
                              Map<String, QuantizedMatrix> columnProjections) {

    public QuantizedExpert {
        rowProjections = Collections.unmodifiableMap(new LinkedHashMap<>(rowProjections));
        columnProjections = Collections.unmodifiableMap(new LinkedHashMap<>(columnProjections));
        int f = permutation.size();
        for (var e : rowProjections.entrySet()) {
            QuantLayout l = e.getValue().layout();
            if (!l.equals(permutation.rowLayout(l.cols(), l.groupSize(), l.symmetric(), l.scaleFormat()))) {
                throw new IllegalArgumentException("row projection '" + e.getKey() + "' " + l + " is not the sorted row layout of a "
                        + f + "-micro-expert permutation (rows must follow the sorted widths)");
            }
        }
        for (var e : columnProjections.entrySet()) {
            QuantLayout l = e.getValue().layout();
            if (!l.equals(permutation.columnLayout(l.rows(), l.groupSize(), l.symmetric(), l.scaleFormat()))) {
                throw new IllegalArgumentException("column projection '" + e.getKey() + "' " + l + " is not the sorted column-slice "
                        + "layout of a " + f + "-micro-expert permutation");
            }
        }
        if (rowProjections.keySet().stream().anyMatch(columnProjections::containsKey)) {
            throw new IllegalArgumentException("a projection cannot be both a row and a column projection");
        }
    }

    /**
     * The fp32 weights every projection decodes to, in the ORIGINAL micro-expert order (same shapes as the input
     * weights), keyed by projection name; the caller closes them.
     */
    public Map<String, FloatTensor> dequantize(HostAllocator allocator) {
        Map<String, FloatTensor> out = new LinkedHashMap<>();
        try {
            for (var e : rowProjections.entrySet()) {
                try (FloatTensor sorted = e.getValue().dequantize(allocator)) {
                    out.put(e.getKey(), permutation.unpermuteRows(sorted, allocator));
                }
            }
            for (var e : columnProjections.entrySet()) {
                try (FloatTensor sorted = e.getValue().dequantize(allocator)) {
                    out.put(e.getKey(), permutation.unpermuteColumns(sorted, allocator));
                }
            }
        } catch (RuntimeException ex) {
            out.values().forEach(FloatTensor::close);
            throw ex;
        }
        return out;
    }
}
