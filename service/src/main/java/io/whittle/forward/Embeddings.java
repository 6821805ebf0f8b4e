package io.whittle.forward;

import io.whittle.model.Checkpoint;
import io.whittle.model.ModelSpec;
import io.whittle.tensor.FloatTensor;
import io.whittle.tensor.HostAllocator;
import io.whittle.tensor.Shape;

/** Token embeddings, read row by row from the checkpoint so the (possibly multi-GB) table is never loaded whole. */
public final class Embeddings {

    private Embeddings() {
    }

    /** H_0 [T, hidden] for every token of the batch; token ids were range-checked when the batch was built. */
    public static FloatTensor lookup(ModelSpec spec, Checkpoint checkpoint, TokenBatch batch, HostAllocator allocator) {
        int[] ids = batch.tokenIds();
        FloatTensor h = allocator.allocate(Shape.of(ids.length, spec.hiddenSize()), "embeddings");
        try {
            for (int row = 0; row < ids.length; row++) {
                if (ids[row] < 0 || ids[row] >= spec.vocabSize()) {
                    throw new IllegalArgumentException("token id " + ids[row] + " at row " + row + " is outside the vocabulary of "
                            + spec.vocabSize());
                }
                checkpoint.readRows(spec.embedTokens(), ids[row], 1, h, row);
            }
        } catch (RuntimeException e) {
            h.close();
            throw e;
        }
        return h;
    }
}
