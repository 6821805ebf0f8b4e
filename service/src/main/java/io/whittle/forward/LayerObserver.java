package io.whittle.forward;

import io.whittle.compute.AttentionObserver;
import io.whittle.compute.Routing;
import io.whittle.tensor.Tensor;

/**
 * What a compression method sees of one layer's forward pass. The layer runs in groups of whole sequences, so
 * every callback may come several times per layer (once per group) and methods accumulate. Tensors passed in
 * belong to the running backend and are valid only during the call.
 */
public interface LayerObserver {

    LayerObserver NONE = new LayerObserver() {
    };

    /** Whether {@link #linearInput} should be called for this weight (a Linear's weight tensor name). */
    default boolean wantsLinearInput(String weightName) {
        return false;
    }

    /**
     * The input rows of a Linear layer: [rows, in_features]. For a routed expert's gate/up projections these are
     * the tokens routed to that expert (in token order), for its down projection the intermediate activations
     * silu(gate) * up of those tokens.
     */
    default void linearInput(String weightName, Tensor input) {
    }

    /** The MoE block input (after post_attention_layernorm) of this group and the routing the forward used. */
    default void moeInput(MoeBlockInput input) {
    }

    /** The MoE block output (routed sum plus shared expert), rows aligned with the last {@link #moeInput}. */
    default void moeOutput(Tensor output) {
    }

    /** Attention probabilities, when wanted ({@link AttentionObserver#wantsProbabilities()}). */
    default AttentionObserver attention() {
        return AttentionObserver.NONE;
    }

    /**
     * One group's MoE input: x [rows, hidden], the routing decision, and for Qwen2-MoE the per-token shared-expert
     * gate sigmoid(shared_expert_gate . x) (null when the family has no gated shared expert). {@code firstRow} is the
     * group's first row in the whole batch.
     */
    record MoeBlockInput(int layer, int firstRow, Tensor x, Routing routing, float[] sharedGate) {
    }
}
