package io.whittle.forward.vision;

import io.whittle.compute.AttentionShape;
import io.whittle.compute.Backend;
import io.whittle.model.Checkpoint;
import io.whittle.model.ModelSpec;
import io.whittle.tensor.FloatTensor;
import io.whittle.tensor.HostAllocator;
import io.whittle.tensor.Shape;
import io.whittle.tensor.Tensor;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import tools.jackson.databind.JsonNode;

/**
 * LLaVA's image encoder: the CLIP ViT vision tower ({@code vision_tower.vision_model.*}) up to the feature layer
 * and the multimodal projector. Embeddings = patch convolution (stride = kernel, no bias) as one GEMM over the
 * unfolded patches, the class embedding prepended, learned positions added, {@code pre_layrnorm}; encoder
 * layers are pre-LN (LayerNorm with bias), non-causal attention with biases, quick_gelu MLP. The features are
 * {@code hidden_states[vision_feature_layer]} (index 0 = after pre_layrnorm, i = output of layer i-1; -2 is the
 * second-to-last layer's output, so the last layer and post_layernorm are never run), CLS dropped ("default"
 * strategy), then the projector Linear-GELU(erf)-Linear. Weights are read one layer at a time.
 */
public final class ClipVisionTower {

    private static final String V = "vision_tower.vision_model.";

    private final ModelSpec spec;
    private final Checkpoint checkpoint;
    private final int hidden;
    private final int heads;
    private final int layers;
    private final int imageSize;
    private final int patch;
    private final int channels;
    private final double eps;
    private final boolean quickGelu;
    private final int[] featureLayers;
    private final String projectorAct;

    public ClipVisionTower(ModelSpec spec, Checkpoint checkpoint) {
        if (spec.family() != ModelSpec.Family.LLAVA) {
            throw new IllegalArgumentException("the CLIP vision tower needs a llava model, got " + spec.modelType());
        }
        this.spec = spec;
        this.checkpoint = checkpoint;
        JsonNode cfg = spec.config();
        JsonNode vc = cfg.path("vision_config");
        this.hidden = intOr(vc, "hidden_size", 768);
        this.heads = intOr(vc, "num_attention_heads", 12);
        this.layers = intOr(vc, "num_hidden_layers", 12);
        this.imageSize = intOr(vc, "image_size", 224);
        this.patch = intOr(vc, "patch_size", 32);
        this.channels = intOr(vc, "num_channels", 3);
        this.eps = vc.has("layer_norm_eps") ? vc.get("layer_norm_eps").asDouble() : 1e-5;
        String act = vc.has("hidden_act") ? vc.get("hidden_act").asString() : "quick_gelu";
        if (!act.equals("quick_gelu") && !act.equals("gelu")) {
            throw new IllegalArgumentException("vision_config.hidden_act '" + act + "' is not supported (quick_gelu or gelu)");
        }
        this.quickGelu = act.equals("quick_gelu");
        if (hidden % heads != 0) {
            throw new IllegalArgumentException("vision_config.hidden_size " + hidden + " is not divisible by num_attention_heads " + heads);
        }
        if (imageSize % patch != 0) {
            throw new IllegalArgumentException("vision_config.image_size " + imageSize + " is not a multiple of patch_size " + patch);
        }
        String strategy = cfg.has("vision_feature_select_strategy") ? cfg.get("vision_feature_select_strategy").asString() : "default";
        if (!strategy.equals("default")) {
            throw new IllegalArgumentException("vision_feature_select_strategy '" + strategy
                    + "' is not supported: visual pruning needs the patch grid without the CLS token ('default')");
        }
        JsonNode fl = cfg.get("vision_feature_layer");
        List<Integer> f = new ArrayList<>();
        if (fl == null || fl.isNull()) {
            f.add(-2);
        } else if (fl.isArray()) {
            fl.forEach(n -> f.add(n.asInt()));
        } else {
            f.add(fl.asInt());
        }
        this.featureLayers = new int[f.size()];
        for (int i = 0; i < featureLayers.length; i++) {
            int idx = f.get(i) < 0 ? layers + 1 + f.get(i) : f.get(i);
            if (idx < 0 || idx > layers) {
                throw new IllegalArgumentException("vision_feature_layer " + f.get(i) + " is outside the " + (layers + 1) + " hidden states");
            }
            featureLayers[i] = idx;
        }
        this.projectorAct = cfg.has("projector_hidden_act") ? cfg.get("projector_hidden_act").asString() : "gelu";
        if (!projectorAct.equals("gelu") && !projectorAct.equals("quick_gelu")) {
            throw new IllegalArgumentException("projector_hidden_act '" + projectorAct + "' is not supported (gelu)");
        }
    }

    private static int intOr(JsonNode n, String field, int dflt) {
        return n.has(field) && !n.get(field).isNull() ? n.get(field).asInt() : dflt;
    }

    public int imageSize() {
        return imageSize;
    }

    /** Patches per side of the grid (24 for 336 / 14). */
    public int gridSize() {
        return imageSize / patch;
    }

    /** Number of visual tokens per image (grid size squared). */
    public int tokens() {
        return gridSize() * gridSize();
    }

    /** Width of the selected features: vision hidden size times the number of feature layers. */
    public int featureWidth() {
        return hidden * featureLayers.length;
    }

    /** Pixel values [3, S, S] to selected vision features [tokens, featureWidth] (host memory from alloc). */
    public FloatTensor features(Backend b, FloatTensor pixels, HostAllocator alloc) {
        if (pixels.shape().rank() != 3 || pixels.shape().dim(0) != channels || pixels.shape().dim(1) != imageSize
                || pixels.shape().dim(2) != imageSize) {
            throw new IllegalArgumentException("pixel values must be [" + channels + ", " + imageSize + ", " + imageSize + "], got "
                    + pixels.shape());
        }
        int g = gridSize(), n = g * g + 1, kdim = channels * patch * patch;
        int lastNeeded = 0;
        for (int f : featureLayers) {
            lastNeeded = Math.max(lastNeeded, f);
        }
        FloatTensor out = alloc.allocate(Shape.of(g * g, featureWidth()), "vision features");
        try (FloatTensor unfolded = alloc.allocate(Shape.of(g * g, kdim), "patches");
             Tensor h = b.allocate(Shape.of(n, hidden));
             Tensor tmp = b.allocate(Shape.of(n, hidden))) {
            // unfold patches in the conv weight's (channel, ky, kx) order
            float[] row = new float[kdim];
            for (int pr = 0; pr < g; pr++) {
                for (int pc = 0; pc < g; pc++) {
                    int i = 0;
                    for (int c = 0; c < channels; c++) {
                        for (int ky = 0; ky < patch; ky++) {
                            pixels.copyTo(((long) c * imageSize + (long) pr * patch + ky) * imageSize + (long) pc * patch, row, i, patch);
                            i += patch;
                        }
                    }
                    unfolded.copyFrom(row, 0, (long) (pr * g + pc) * kdim, kdim);
                }
            }
            try (FloatTensor convW = checkpoint.readFloat(V + "embeddings.patch_embedding.weight", alloc);
                 FloatTensor cls = checkpoint.readFloat(V + "embeddings.class_embedding", alloc);
                 FloatTensor pos = checkpoint.readFloat(V + "embeddings.position_embedding.weight", alloc);
                 FloatTensor lnW = checkpoint.readFloat(V + "pre_layrnorm.weight", alloc);
                 FloatTensor lnB = checkpoint.readFloat(V + "pre_layrnorm.bias", alloc);
                 Tensor xu = b.upload(unfolded);
                 Tensor wu = b.upload(convW.reshape(hidden, kdim));
                 Tensor clsU = b.upload(cls);
                 Tensor posU = b.upload(pos);
                 Tensor lnWu = b.upload(lnW);
                 Tensor lnBu = b.upload(lnB)) {
                b.linear(xu, wu, null, h.rowSlice(1, g * g));
                b.copy(clsU, 0, h, 0, hidden);
                b.add(h, posU, tmp);
                b.layerNorm(tmp, lnWu, lnBu, eps, h);
            }
            collect(b, h, 0, out);
            for (int l = 0; l < lastNeeded; l++) {
                layer(b, l, h, alloc);
                collect(b, h, l + 1, out);
            }
        } catch (RuntimeException e) {
            out.close();
            throw e;
        }
        return out;
    }

    /** Copies hidden state {@code index} (CLS dropped) into its column block of the features when it is selected. */
    private void collect(Backend b, Tensor h, int index, FloatTensor out) {
        for (int i = 0; i < featureLayers.length; i++) {
            if (featureLayers[i] == index) {
                try (Tensor o = b.upload(out)) {
                    b.copyBlock(h, 1, 0, o, 0, i * hidden, tokens(), hidden);
                    try (FloatTensor back = b.toHost(o)) {
                        if (back.address() != out.address()) {
                            out.copyFrom(back, 0, 0, out.numel());
                        }
                    }
                }
            }
        }
    }

    /** One encoder layer in place on h [n, hidden]. */
    private void layer(Backend b, int l, Tensor h, HostAllocator alloc) {
        String p = V + "encoder.layers." + l + ".";
        int n = h.rows();
        Map<String, Tensor> w = new HashMap<>();
        List<FloatTensor> host = new ArrayList<>();
        try {
            for (String name : List.of("layer_norm1.weight", "layer_norm1.bias", "self_attn.q_proj.weight", "self_attn.q_proj.bias",
                    "self_attn.k_proj.weight", "self_attn.k_proj.bias", "self_attn.v_proj.weight", "self_attn.v_proj.bias",
                    "self_attn.out_proj.weight", "self_attn.out_proj.bias", "layer_norm2.weight", "layer_norm2.bias",
                    "mlp.fc1.weight", "mlp.fc1.bias", "mlp.fc2.weight", "mlp.fc2.bias")) {
                FloatTensor t = checkpoint.readFloat(p + name, alloc);
                host.add(t);
                w.put(name, b.upload(t));
            }
            int inter = w.get("mlp.fc1.weight").rows();
            try (Tensor x = b.allocate(Shape.of(n, hidden));
                 Tensor q = b.allocate(Shape.of(n, hidden));
                 Tensor k = b.allocate(Shape.of(n, hidden));
                 Tensor v = b.allocate(Shape.of(n, hidden));
                 Tensor a = b.allocate(Shape.of(n, hidden));
                 Tensor m = b.allocate(Shape.of(n, inter))) {
                b.layerNorm(h, w.get("layer_norm1.weight"), w.get("layer_norm1.bias"), eps, x);
                b.linear(x, w.get("self_attn.q_proj.weight"), w.get("self_attn.q_proj.bias"), q);
                b.linear(x, w.get("self_attn.k_proj.weight"), w.get("self_attn.k_proj.bias"), k);
                b.linear(x, w.get("self_attn.v_proj.weight"), w.get("self_attn.v_proj.bias"), v);
                b.bidirectionalAttention(q, k, v, a, new AttentionShape(heads, heads, hidden / heads), new int[] {0}, new int[] {n});
                b.linear(a, w.get("self_attn.out_proj.weight"), w.get("self_attn.out_proj.bias"), x);
                b.add(h, x, h);
                b.layerNorm(h, w.get("layer_norm2.weight"), w.get("layer_norm2.bias"), eps, x);
                b.linear(x, w.get("mlp.fc1.weight"), w.get("mlp.fc1.bias"), m);
                if (quickGelu) {
                    b.quickGelu(m, m);
                } else {
                    b.gelu(m, m);
                }
                b.linear(m, w.get("mlp.fc2.weight"), w.get("mlp.fc2.bias"), x);
                b.add(h, x, h);
            }
        } finally {
            w.values().forEach(Tensor::close);
            host.forEach(FloatTensor::close);
        }
    }

    /** The multimodal projector: features [tokens, featureWidth] to embeddings [tokens, text hidden]. */
    public FloatTensor project(Backend b, FloatTensor features, HostAllocator alloc) {
        if (features.shape().rank() != 2 || features.cols() != featureWidth()) {
            throw new IllegalArgumentException("image features must be [tokens, " + featureWidth() + "], got " + features.shape());
        }
        int t = features.rows(), d = spec.hiddenSize();
        String b1 = "multi_modal_projector.linear_1.bias", b2 = "multi_modal_projector.linear_2.bias";
        FloatTensor out = alloc.allocate(Shape.of(t, d), "image embeds");
        try (FloatTensor w1 = checkpoint.readFloat("multi_modal_projector.linear_1.weight", alloc);
             FloatTensor w2 = checkpoint.readFloat("multi_modal_projector.linear_2.weight", alloc);
             FloatTensor bias1 = checkpoint.contains(b1) ? checkpoint.readFloat(b1, alloc) : null;
             FloatTensor bias2 = checkpoint.contains(b2) ? checkpoint.readFloat(b2, alloc) : null;
             Tensor x = b.upload(features);
             Tensor w1u = b.upload(w1);
             Tensor w2u = b.upload(w2);
             Tensor b1u = bias1 == null ? null : b.upload(bias1);
             Tensor b2u = bias2 == null ? null : b.upload(bias2);
             Tensor mid = b.allocate(Shape.of(t, d));
             Tensor y = b.allocate(Shape.of(t, d))) {
            b.linear(x, w1u, b1u, mid);
            if (projectorAct.equals("gelu")) {
                b.gelu(mid, mid);
            } else {
                b.quickGelu(mid, mid);
            }
            b.linear(mid, w2u, b2u, y);
            try (FloatTensor back = b.toHost(y)) {
                out.copyFrom(back, 0, 0, out.numel());
            }
        } catch (RuntimeException e) {
            out.close();
            throw e;
        }
        return out;
    }
}
