package io.whittle.methods.camera;

import io.whittle.compute.Backend;
import io.whittle.tensor.Tensor;

import io.whittle.forward.LayerWeights;
import io.whittle.model.ModelSpec;
import io.whittle.model.ModelSpec.Mlp;
import io.whittle.model.ModelSpec.MoeNames;
import io.whittle.tensor.FloatTensor;

/**
 * The micro-experts of one MoE layer in pool order: the shared expert's channels first (where the family has one),
 * then expert 0 channels 0..f-1, expert 1, and so on. A micro-expert is row j of W_gate, row j of W_up and column j
 * of W_down of one expert (or of the shared expert). Pool order fixes tie-breaking and the layout of every
 * per-layer vector CAMERA reports.
 *
 * @param layer        the decoder layer index
 * @param names        the layer's MoE tensor names
 * @param experts      number of routed experts
 * @param expertWidth  channels per routed expert (as stored in this checkpoint)
 * @param sharedWidth  channels of the shared expert, 0 when there is none
 * @param hidden       model width (input dimension of gate/up, output of down)
 * @param sharedGated  whether the shared expert's output is scaled by sigmoid(shared_expert_gate . x) (Qwen2-MoE)
 */
public record MoePool(int layer, MoeNames names, int experts, int expertWidth, int sharedWidth, int hidden,
                      boolean sharedGated) {

    /** The pool of an MoE layer of {@code spec}; throws for a dense layer. */
    public static MoePool of(ModelSpec spec, int layer) {
        if (!spec.isMoeLayer(layer)) {
            throw new IllegalArgumentException("layer " + layer + " of this " + spec.modelType() + " model is not an MoE layer");
        }
        ModelSpec.Moe moe = spec.moe();
        MoeNames names = spec.layer(layer).moe();
        return new MoePool(layer, names, moe.experts(), moe.expertIntermediate(), names.shared() == null ? 0 : moe.sharedIntermediate(),
                spec.hiddenSize(), names.sharedGate() != null);
    }

    /** N_e: the number of micro-experts of the layer. */
    public int size() {
        return sharedWidth + experts * expertWidth;
    }

    public boolean hasShared() {
        return sharedWidth > 0;
    }

    /** Pool index of channel 0 of routed expert {@code e}. */
    public int expertOffset(int e) {
        return sharedWidth + e * expertWidth;
    }

    /** Number of groups: the shared expert (when present) plus every routed expert. */
    public int groupCount() {
        return (hasShared() ? 1 : 0) + experts;
    }

    /**
     * Group g in pool order: with a shared expert, group 0 is the shared expert and group g >= 1 is expert g - 1;
     * without one, group g is expert g.
     */
    public Mlp groupMlp(int g) {
        if (hasShared()) {
            return g == 0 ? names.shared() : names.experts().get(g - 1);
        }
        return names.experts().get(g);
    }

    /** First pool index of group g. */
    public int groupOffset(int g) {
        return hasShared() ? (g == 0 ? 0 : expertOffset(g - 1)) : expertOffset(g);
    }

    public int groupWidth(int g) {
        return hasShared() && g == 0 ? sharedWidth : expertWidth;
    }

    /** Whether group g is the shared expert. */
    public boolean isSharedGroup(int g) {
        return hasShared() && g == 0;
    }

    /** The routed expert of group g, or -1 for the shared expert. */
    public int expertOfGroup(int g) {
        return hasShared() ? g - 1 : g;
    }

    /** ||w_j^down||^2 for every micro-expert, in pool order (fp64 sums of the fp32 weights). */
    public double[] downNormsSquared(LayerWeights weights, Backend backend) {
        double[] out = new double[size()];
        for (int g = 0; g < groupCount(); g++) {
            try (Tensor down = backend.upload(weights.get(groupMlp(g).down()))) {
                // column j of W_down is micro-expert j's output direction
                System.arraycopy(backend.columnSumSquares(down), 0, out, groupOffset(g), groupWidth(g));
            }
        }
        return out;
    }

    /**
     * The squared Frobenius norm of each micro-expert's 3 x hidden parameters (gate row, up row, down column), in
     * pool order: the weight-magnitude baseline's score.
     */
    public double[] magnitudesSquared(LayerWeights weights, Backend backend) {
        double[] out = downNormsSquared(weights, backend);
        for (int g = 0; g < groupCount(); g++) {
            Mlp mlp = groupMlp(g);
            int off = groupOffset(g);
            for (String name : new String[] {mlp.gate(), mlp.up()}) {
                try (Tensor w = backend.upload(weights.get(name))) {
                    double[] rows = backend.rowSumSquares(w); // row j of W_gate / W_up belongs to micro-expert j
                    for (int j = 0; j < rows.length; j++) {
                        out[off + j] += rows[j];
                    }
                }
            }
        }
        return out;
    }
}
