package io.whittle.methods.wgsef;

import java.util.List;

/** The sparsified matrices (in the partition's member order) and the report of how they were obtained. */
public record WgsefSolution(List<float[]> matrices, WgsefResult result) {

    public WgsefSolution {
        matrices = List.copyOf(matrices);
    }
}
