package io.whittle.forward;

import io.whittle.model.Checkpoint;
import io.whittle.tensor.DType;
import io.whittle.tensor.FloatTensor;
import io.whittle.tensor.HostAllocator;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * The fp32 host copies of one layer's tensors, as read from the checkpoint, plus the storage dtype of each. A
 * method replaces tensors through {@link #replace}; {@link #changed()} says which, so that the writer copies every
 * untouched tensor byte for byte from the input.
 */
public final class LayerWeights implements AutoCloseable {

    private final int layer;
    private final Map<String, FloatTensor> tensors = new LinkedHashMap<>();
    private final Map<String, DType> dtypes = new LinkedHashMap<>();
    private final Set<String> changed = new LinkedHashSet<>();

    private LayerWeights(int layer) {
        this.layer = layer;
    }

    public static LayerWeights load(Checkpoint checkpoint, int layer, List<String> names, HostAllocator allocator) {
        LayerWeights w = new LayerWeights(layer);
        try {
            for (String name : names) {
                w.tensors.put(name, checkpoint.readFloat(name, allocator));
                w.dtypes.put(name, checkpoint.entry(name).dtype());
            }
        } catch (RuntimeException e) {
            w.close();
            throw e;
        }
        return w;
    }

    /** Weights built in memory (tests, synthetic benchmarks); every tensor counts as unchanged. */
    public static LayerWeights of(int layer, Map<String, FloatTensor> tensors, DType dtype) {
        LayerWeights w = new LayerWeights(layer);
        tensors.forEach((n, t) -> {
            w.tensors.put(n, t);
            w.dtypes.put(n, dtype);
        });
        return w;
    }

    public int layer() {
        return layer;
    }

    public FloatTensor get(String name) {
        FloatTensor t = tensors.get(name);
        if (t == null) {
            throw new IllegalArgumentException("layer " + layer + " has no tensor '" + name + "'");
        }
        return t;
    }

    /** The tensor or null when the name is null (optional tensors such as biases). */
    public FloatTensor getOptional(String name) {
        return name == null ? null : get(name);
    }

    public boolean contains(String name) {
        return tensors.containsKey(name);
    }

    public DType dtype(String name) {
        return dtypes.get(name);
    }

    public Set<String> names() {
        return Collections.unmodifiableSet(tensors.keySet());
    }

    /**
     * Replaces a tensor (this object takes ownership of the new one and closes the old). The shape may change
     * (compact layouts); the storage dtype stays unless given.
     */
    public void replace(String name, FloatTensor value) {
        FloatTensor old = tensors.put(name, value);
        if (old == null) {
            throw new IllegalArgumentException("layer " + layer + " has no tensor '" + name + "' to replace");
        }
        if (old != value) {
            old.close();
        }
        changed.add(name);
    }

    /** Marks a tensor changed after in-place edits of the tensor returned by {@link #get}. */
    public void markChanged(String name) {
        get(name);
        changed.add(name);
    }

    public Set<String> changed() {
        return Collections.unmodifiableSet(changed);
    }

    public boolean anyChanged() {
        return !changed.isEmpty();
    }

    @Override
    public void close() {
        tensors.values().forEach(FloatTensor::close);
    }
}
