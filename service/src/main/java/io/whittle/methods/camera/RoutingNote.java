package io.whittle.methods.camera;

/** How the scores weight routed tokens, recorded in every CAMERA report. */
final class RoutingNote {

    static final String TEXT = "A_e(t) = the routing weight the engine's forward multiplies expert e's output by (softmax in "
            + "fp32 over all experts, top-k, renormalised where the family renormalises: Mixtral always, Qwen3-MoE and "
            + "others per norm_topk_prob); shared expert A = 1 (DeepSeek) or sigmoid(shared_expert_gate . x) (Qwen2-MoE). "
            + "DeepSeek's remote code computes the router softmax in bf16, so its top-k can differ on near-ties.";

    private RoutingNote() {
    }
}
