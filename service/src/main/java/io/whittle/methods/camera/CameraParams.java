package io.whittle.methods.camera;

import io.whittle.forward.LayerwisePipeline;
import io.whittle.methods.MethodParams;
import io.whittle.methods.ParamSpec;
import io.whittle.model.ModelSpec;
import io.whittle.model.ModelSpec.Family;
import java.util.List;
import java.util.Set;

/** The parameters the CAMERA methods share, and the model checks they all make. */
final class CameraParams {

    static final Set<Family> FAMILIES = Set.of(Family.MIXTRAL, Family.QWEN2_MOE, Family.QWEN3_MOE, Family.OLMOE, Family.DEEPSEEK);

    static final ParamSpec ALPHA = ParamSpec.number("alpha", 1.0, 0.0, false, 1.0, false,
            "weight of the peak term: E_j = [(1 - alpha) * sum_t phi_j^2 + alpha * max_t phi_j^2] * ||w_j^down||^2");

    static final ParamSpec MODE = ParamSpec.choice("mode", "sequential", List.of("sequential", "parallel"),
            "sequential: score each layer on the outputs of the already-compressed layers before it (the paper); "
                    + "parallel: score every layer on the uncompressed model's activations");

    private CameraParams() {
    }

    static LayerwisePipeline.Mode mode(MethodParams p) {
        return p.getString("mode").equals("parallel") ? LayerwisePipeline.Mode.PARALLEL : LayerwisePipeline.Mode.SEQUENTIAL;
    }

    /** Rejects a model without MoE layers before any work starts. */
    static void requireMoe(String method, ModelSpec spec) {
        if (!spec.isMoeModel()) {
            throw new IllegalArgumentException(method + " needs an MoE model (micro-experts are channels of routed experts); "
                    + "this " + spec.modelType() + " config has no MoE layers");
        }
    }
}
