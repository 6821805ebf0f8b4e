package io.whittle.forward;

/**
 * A compression method as the layer-wise pipeline drives it. Per layer: the pipeline loads the weights, runs the
 * observation pass with {@link #observer} (when non-null), calls {@link #compress} (which replaces or edits
 * weights), propagates the hidden states, and hands the final weights to {@link #layerDone}.
 */
public interface LayerVisitor {

    LayerVisitor NONE = new LayerVisitor() {
    };

    /** Hooks for this layer's observation pass, or null when the method needs no observation of this layer. */
    default LayerObserver observer(LayerWeights weights) {
        return null;
    }

    /** Changes the layer's weights (through {@link LayerWeights#replace} or {@link LayerWeights#markChanged}). */
    default void compress(LayerWeights weights) {
    }

    /** The layer's final weights, valid only during the call (they are closed afterwards). */
    default void layerDone(LayerWeights weights) {
    }
}
