package io.whittle.forward;

import io.whittle.compute.Backend;
import io.whittle.model.Checkpoint;
import io.whittle.model.ModelSpec;
import io.whittle.model.ModelSpecs;
import io.whittle.tensor.HostAllocator;
import java.nio.file.Path;

/** Next-token NLL and perplexity of a checkpoint on token sequences, through the layer-wise pipeline. */
public final class Evaluation {

    private Evaluation() {
    }

    public static PipelineResult evaluate(Path modelDir, TokenBatch batch, Backend backend,
                                          LayerwisePipeline.Listener listener) {
        try (HostAllocator alloc = HostAllocator.root().newChild("eval", Long.MAX_VALUE)) {
            return evaluate(modelDir, batch, backend, alloc, listener);
        }
    }

    /** As above, drawing host memory from {@code alloc} (give the backend the same one to see the whole peak). */
    public static PipelineResult evaluate(Path modelDir, TokenBatch batch, Backend backend, HostAllocator alloc,
                                          LayerwisePipeline.Listener listener) {
        ModelSpec spec = ModelSpecs.load(modelDir);
        try (Checkpoint checkpoint = Checkpoint.open(modelDir)) {
            spec.requireValid(checkpoint);
            return LayerwisePipeline.run(spec, checkpoint, backend, batch, LayerVisitor.NONE,
                    LayerwisePipeline.Options.evaluation(alloc), listener);
        }
    }
}
