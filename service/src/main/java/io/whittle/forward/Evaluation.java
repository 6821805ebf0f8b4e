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
        ModelSpec spec = ModelSpecs.load(modelDir);
        try (Checkpoint checkpoint = Checkpoint.open(modelDir);
             HostAllocator alloc = HostAllocator.root().newChild("eval", Long.MAX_VALUE)) {
            spec.requireValid(checkpoint);
            return LayerwisePipeline.run(spec, checkpoint, backend, batch, LayerVisitor.NONE,
                    LayerwisePipeline.Options.evaluation(alloc), listener);
        }
    }
}
