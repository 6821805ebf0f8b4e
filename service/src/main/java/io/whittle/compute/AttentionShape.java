package io.whittle.compute;

/** Head geometry of one attention call: query heads, key/value heads (GQA) and head dimension. */
public record AttentionShape(int heads, int kvHeads, int headDim) {
    public AttentionShape {
        if (heads <= 0 || kvHeads <= 0 || headDim <= 0 || heads % kvHeads != 0) {
            throw new IllegalArgumentException("invalid attention shape: heads=" + heads + ", kvHeads=" + kvHeads
                    + ", headDim=" + headDim + " (heads must be a positive multiple of kvHeads)");
        }
    }

    /** Query heads per key/value head. */
    public int groupSize() {
        return heads / kvHeads;
    }
}
