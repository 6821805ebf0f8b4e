package io.whittle.compute;

/**
 * Receives attention probabilities on demand (methods that score heads by where their attention goes). The
 * backend calls {@link #probabilities} only when {@link #wantsProbabilities()} is true, once per (sequence, head),
 * with the softmax output rows [length, length] of that head (row i = query i; entries above the diagonal are 0).
 */
public interface AttentionObserver {

    AttentionObserver NONE = new AttentionObserver() {
    };

    default boolean wantsProbabilities() {
        return false;
    }

    /** {@code probs[i * length + j]} is the weight of key j for query i; valid only during the call. */
    default void probabilities(int sequence, int head, int length, float[] probs) {
    }
}
