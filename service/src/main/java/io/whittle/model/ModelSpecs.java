package io.whittle.model;

import io.whittle.model.ModelSpec.Family;
import io.whittle.model.ModelSpec.Moe;
import io.whittle.model.ModelSpec.QkNorm;
import io.whittle.model.ModelSpec.SharedGate;
import io.whittle.model.ModelSpec.TensorShape;
import io.whittle.tensor.DType;
import io.whittle.tensor.Shape;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import tools.jackson.core.JacksonException;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;

/**
 * Parses config.json into a {@link ModelSpec}. Defaults are those of the transformers configuration class of
 * each family (DeepSeek: the hub remote code's {@code DeepseekConfig}), because transformers fills every absent
 * field from them; the LLaVA {@code text_config} of llava-1.5 gives no sizes at all and relies on this.
 */
public final class ModelSpecs {

    private static final JsonMapper JSON = JsonMapper.builder().build();

    private ModelSpecs() {
    }

    /** Reads {@code config.json} from a model directory (or the file itself). */
    public static ModelSpec load(Path modelDirOrConfig) {
        Path file = Files.isDirectory(modelDirOrConfig) ? modelDirOrConfig.resolve("config.json") : modelDirOrConfig;
        String text;
        try {
            text = Files.readString(file);
        } catch (NoSuchFileException e) {
            throw new ModelConfigException(file + ": no config.json (a Hugging Face model directory needs one)");
        } catch (IOException e) {
            throw new ModelConfigException(file + ": cannot read: " + e.getMessage(), e);
        }
        JsonNode node;
        try {
            node = JSON.readTree(text);
        } catch (JacksonException e) {
            throw new ModelConfigException(file + ": invalid JSON: " + e.getOriginalMessage(), e);
        }
        return fromConfig(node, file.toString());
    }

    public static ModelSpec fromConfig(JsonNode config, String where) {
        if (config == null || !config.isObject()) {
            throw new ModelConfigException(where + ": config must be a JSON object");
        }
        ConfigReader c = new ConfigReader(config, where);
        String modelType = c.getString("model_type", null);
        if (modelType == null) {
            throw new ModelConfigException(where + ": config has no model_type; supported: " + Family.supportedModelTypes());
        }
        Family family = Family.fromModelType(modelType);
        return switch (family) {
            case LLAMA -> decoder(family, c, c, config, llamaDefaults(), "model.", "lm_head.weight", List.of(), null);
            case MIXTRAL, QWEN2_MOE, QWEN3_MOE, OLMOE, DEEPSEEK -> decoder(family, c, c, config, defaults(family), "model.",
                    "lm_head.weight", List.of(), null);
            case LLAVA -> llava(c, config);
            case QWEN2_VL -> qwen2Vl(c, config);
        };
    }

    /** The transformers class defaults one family starts from. */
    private record Defaults(int vocab, int hidden, int intermediate, int layers, int heads, Integer kvHeads, double eps,
                            double theta, int experts, int topK, int expertIntermediate, int sharedIntermediate,
                            boolean normTopk, boolean qkvBias) {
    }

    private static Defaults llamaDefaults() {
        // LlamaConfig: kv heads default to the attention heads; rms_norm_eps 1e-6
        return new Defaults(32000, 4096, 11008, 32, 32, null, 1e-6, 10000.0, 0, 0, 0, 0, false, false);
    }

    private static Defaults defaults(Family family) {
        return switch (family) {
            case MIXTRAL -> new Defaults(32000, 4096, 14336, 32, 32, 8, 1e-5, 1e6, 8, 2, 14336, 0, true, false);
            case QWEN2_MOE -> new Defaults(151936, 2048, 5632, 24, 16, 16, 1e-6, 10000.0, 60, 4, 1408, 5632, false, true);
            case QWEN3_MOE -> new Defaults(151936, 2048, 6144, 24, 32, 4, 1e-6, 10000.0, 128, 8, 768, 0, false, false);
            case OLMOE -> new Defaults(50304, 2048, 2048, 16, 16, null, 1e-5, 10000.0, 64, 8, 2048, 0, false, false);
            case DEEPSEEK -> new Defaults(102400, 4096, 11008, 30, 32, null, 1e-6, 10000.0, 0, 0, 1407, 0, false, false);
            default -> throw new IllegalStateException("no decoder defaults for " + family);
        };
    }

    /**
     * The decoder spec from {@code c} (the top-level config, or the {@code text_config} of a multimodal one);
     * {@code top} is the top-level config, whose {@code torch_dtype} is the one transformers loads with.
     */
    private static ModelSpec decoder(Family family, ConfigReader c, ConfigReader top, JsonNode raw, Defaults d, String prefix,
                                     String lmHead, List<TensorShape> extra, Integer imageTokenId) {
        String act = c.getString("hidden_act", "silu");
        if (!act.equals("silu")) {
            throw new ModelConfigException(c.where() + ": hidden_act '" + act + "' is not supported (only silu, as in every "
                    + "supported family)");
        }
        if (c.getBool("use_sliding_window", false)) {
            throw new ModelConfigException(c.where() + ": use_sliding_window=true is not supported");
        }
        checkRopeScaling(c, family);
        if (family == Family.OLMOE && c.has("clip_qkv")) {
            throw new ModelConfigException(c.where() + ": clip_qkv is not supported (OLMoE-1B-7B has null)");
        }
        int vocab = positive(c, "vocab_size", d.vocab());
        int hidden = positive(c, "hidden_size", d.hidden());
        int layers = positive(c, "num_hidden_layers", d.layers());
        int heads = positive(c, "num_attention_heads", d.heads());
        int kvHeads = positive(c, "num_key_value_heads", d.kvHeads() == null ? heads : d.kvHeads());
        if (heads % kvHeads != 0) {
            throw new ModelConfigException(c.where() + ": num_attention_heads " + heads + " is not a multiple of num_key_value_heads " + kvHeads);
        }
        int headDim = c.has("head_dim") ? positive(c, "head_dim", 0) : hidden / heads;
        if (!c.has("head_dim") && hidden % heads != 0) {
            throw new ModelConfigException(c.where() + ": hidden_size " + hidden + " is not divisible by num_attention_heads " + heads);
        }
        if (headDim % 2 != 0) {
            throw new ModelConfigException(c.where() + ": head_dim " + headDim + " must be even for rotary embeddings");
        }
        int intermediate = positive(c, "intermediate_size", d.intermediate());
        double eps = c.getDouble("rms_norm_eps", d.eps());
        double theta = ropeTheta(c, d.theta());
        boolean tie = c.getBool("tie_word_embeddings", false);
        boolean qkvBias = switch (family) {
            case QWEN2_MOE -> c.getBool("qkv_bias", d.qkvBias());
            case QWEN2_VL -> true;
            default -> c.getBool("attention_bias", false);
        };
        if (c.getBool("mlp_bias", false)) {
            throw new ModelConfigException(c.where() + ": mlp_bias=true is not supported");
        }
        QkNorm qkNorm = switch (family) {
            case QWEN3_MOE -> QkNorm.PER_HEAD;
            case OLMOE -> QkNorm.WHOLE;
            default -> QkNorm.NONE;
        };
        Moe moe = null;
        Set<Integer> moeLayers = new HashSet<>();
        switch (family) {
            case MIXTRAL -> {
                moe = new Moe(positive(c, "num_local_experts", d.experts()), positive(c, "num_experts_per_tok", d.topK()),
                        intermediate, 0, SharedGate.NONE, true, 0.0);
                for (int l = 0; l < layers; l++) {
                    moeLayers.add(l);
                }
            }
            case OLMOE -> {
                moe = new Moe(positive(c, "num_experts", d.experts()), positive(c, "num_experts_per_tok", d.topK()),
                        intermediate, 0, SharedGate.NONE, c.getBool("norm_topk_prob", d.normTopk()), 0.0);
                for (int l = 0; l < layers; l++) {
                    moeLayers.add(l);
                }
            }
            case QWEN2_MOE, QWEN3_MOE -> {
                int experts = c.getInt("num_experts", d.experts());
                int shared = family == Family.QWEN2_MOE ? c.getInt("shared_expert_intermediate_size", d.sharedIntermediate()) : 0;
                moe = new Moe(experts, positive(c, "num_experts_per_tok", d.topK()),
                        positive(c, "moe_intermediate_size", d.expertIntermediate()), shared,
                        shared > 0 ? SharedGate.SIGMOID : SharedGate.NONE, c.getBool("norm_topk_prob", d.normTopk()), 0.0);
                int step = positive(c, "decoder_sparse_step", 1);
                Set<Integer> mlpOnly = new HashSet<>(c.getIntList("mlp_only_layers"));
                for (int l = 0; l < layers; l++) {
                    if (!mlpOnly.contains(l) && experts > 0 && (l + 1) % step == 0) {
                        moeLayers.add(l);
                    }
                }
            }
            case DEEPSEEK -> {
                Integer routed = c.getIntOrNull("n_routed_experts");
                String scoring = c.getString("scoring_func", "softmax");
                if (!scoring.equals("softmax")) {
                    throw new ModelConfigException(c.where() + ": scoring_func '" + scoring + "' is not supported (DeepSeek-MoE uses softmax)");
                }
                if (routed != null) {
                    int topK = c.getIntOrNull("num_experts_per_tok") == null
                            ? fail(c, "num_experts_per_tok is required when n_routed_experts is set") : positive(c, "num_experts_per_tok", 1);
                    int width = positive(c, "moe_intermediate_size", d.expertIntermediate());
                    Integer nShared = c.getIntOrNull("n_shared_experts");
                    int shared = nShared == null ? 0 : width * nShared;
                    // DeepSeek's remote code renormalises only when top_k > 1, adding 1e-20 to the denominator
                    moe = new Moe(routed, topK, width, shared, SharedGate.NONE,
                            topK > 1 && c.getBool("norm_topk_prob", false), 1e-20);
                    int firstDense = c.getInt("first_k_dense_replace", 0);
                    int freq = positive(c, "moe_layer_freq", 1);
                    for (int l = 0; l < layers; l++) {
                        if (l >= firstDense && l % freq == 0) {
                            moeLayers.add(l);
                        }
                    }
                }
            }
            default -> {
            }
        }
        if (moe != null && !moeLayers.isEmpty() && moe.topK() > moe.experts()) {
            throw new ModelConfigException(c.where() + ": num_experts_per_tok " + moe.topK() + " exceeds the " + moe.experts() + " experts");
        }
        DType dtype = DType.fromTorchDtype(torchDtype(top))
                .or(() -> DType.fromTorchDtype(torchDtype(c)))
                .orElse(DType.BF16);
        return new ModelSpec(family, prefix, lmHead, vocab, hidden, layers, heads, kvHeads, headDim, intermediate, eps, theta,
                tie, qkvBias, qkNorm, moe, moeLayers, dtype, extra, imageTokenId, raw);
    }

    /** {@code torch_dtype}, or {@code dtype} as transformers v5 spells it; null when neither is given. */
    private static String torchDtype(ConfigReader c) {
        return c.getString("torch_dtype", c.getString("dtype", null));
    }

    private static ModelSpec llava(ConfigReader c, JsonNode raw) {
        ConfigReader text = c.child("text_config");
        String textType = text.getString("model_type", "llama");
        if (!textType.equals("llama")) {
            throw new ModelConfigException(c.where() + ": llava text_config.model_type '" + textType + "' is not supported (llama only)");
        }
        ConfigReader vision = c.child("vision_config");
        String visionType = vision.getString("model_type", "clip_vision_model");
        if (!visionType.equals("clip_vision_model")) {
            throw new ModelConfigException(c.where() + ": llava vision_config.model_type '" + visionType + "' is not supported (CLIP only)");
        }
        // sizes come from text_config alone (LlamaConfig defaults fill the gaps); the dtype from the top level
        int th = positive(text, "hidden_size", llamaDefaults().hidden());
        List<TensorShape> extra = new ArrayList<>();
        int vh = positive(vision, "hidden_size", 768);
        int vi = positive(vision, "intermediate_size", 3072);
        int vl = positive(vision, "num_hidden_layers", 12);
        int image = positive(vision, "image_size", 224);
        int patch = positive(vision, "patch_size", 32);
        int channels = positive(vision, "num_channels", 3);
        String v = "vision_tower.vision_model.";
        extra.add(new TensorShape(v + "embeddings.class_embedding", Shape.of(vh)));
        extra.add(new TensorShape(v + "embeddings.patch_embedding.weight", Shape.of(vh, channels, patch, patch)));
        long positions = (long) (image / patch) * (image / patch) + 1;
        extra.add(new TensorShape(v + "embeddings.position_embedding.weight", Shape.of(positions, vh)));
        extra.add(new TensorShape(v + "pre_layrnorm.weight", Shape.of(vh)));
        extra.add(new TensorShape(v + "pre_layrnorm.bias", Shape.of(vh)));
        for (int m = 0; m < vl; m++) {
            String p = v + "encoder.layers." + m + ".";
            for (String proj : List.of("q_proj", "k_proj", "v_proj", "out_proj")) {
                extra.add(new TensorShape(p + "self_attn." + proj + ".weight", Shape.of(vh, vh)));
                extra.add(new TensorShape(p + "self_attn." + proj + ".bias", Shape.of(vh)));
            }
            extra.add(new TensorShape(p + "layer_norm1.weight", Shape.of(vh)));
            extra.add(new TensorShape(p + "layer_norm1.bias", Shape.of(vh)));
            extra.add(new TensorShape(p + "mlp.fc1.weight", Shape.of(vi, vh)));
            extra.add(new TensorShape(p + "mlp.fc1.bias", Shape.of(vi)));
            extra.add(new TensorShape(p + "mlp.fc2.weight", Shape.of(vh, vi)));
            extra.add(new TensorShape(p + "mlp.fc2.bias", Shape.of(vh)));
            extra.add(new TensorShape(p + "layer_norm2.weight", Shape.of(vh)));
            extra.add(new TensorShape(p + "layer_norm2.bias", Shape.of(vh)));
        }
        extra.add(new TensorShape(v + "post_layernorm.weight", Shape.of(vh)));
        extra.add(new TensorShape(v + "post_layernorm.bias", Shape.of(vh)));
        int featureLayers = c.raw("vision_feature_layer") != null && c.raw("vision_feature_layer").isArray()
                ? c.raw("vision_feature_layer").size() : 1;
        boolean projBias = c.getBool("multimodal_projector_bias", true);
        extra.add(new TensorShape("multi_modal_projector.linear_1.weight", Shape.of(th, (long) vh * featureLayers)));
        if (projBias) {
            extra.add(new TensorShape("multi_modal_projector.linear_1.bias", Shape.of(th)));
        }
        extra.add(new TensorShape("multi_modal_projector.linear_2.weight", Shape.of(th, th)));
        if (projBias) {
            extra.add(new TensorShape("multi_modal_projector.linear_2.bias", Shape.of(th)));
        }
        Integer imageToken = c.has("image_token_index") ? c.getInt("image_token_index", 32000) : c.getInt("image_token_id", 32000);
        return decoder(Family.LLAVA, text, c, raw, llamaDefaults(), "language_model.model.", "language_model.lm_head.weight",
                extra, imageToken);
    }

    private static ModelSpec qwen2Vl(ConfigReader c, JsonNode raw) {
        // Qwen2VLConfig defaults (the 72B shape); M-RoPE reduces to ordinary RoPE for text-only calibration
        Defaults d = new Defaults(152064, 8192, 29568, 80, 64, 8, 1e-5, 1e6, 0, 0, 0, 0, false, true);
        // Newer transformers (Qwen2VLTextConfig) save the LM fields under text_config, which then wins over the
        // top level; older files (the hub's) keep them at the top level.
        ConfigReader text = c.has("text_config") ? c.child("text_config") : c;
        ConfigReader vision = c.child("vision_config");
        int depth = positive(vision, "depth", 32);
        int embed = positive(vision, "embed_dim", 1280);
        int ratio = positive(vision, "mlp_ratio", 4);
        int patch = positive(vision, "patch_size", 14);
        int temporal = positive(vision, "temporal_patch_size", 2);
        int merge = positive(vision, "spatial_merge_size", 2);
        int channels = positive(vision, "in_chans", vision.getInt("in_channels", 3));
        // Qwen2VLVisionConfig.hidden_size (the merger's output width) defaults to 3584, whatever the LM width
        int outHidden = positive(vision, "hidden_size", 3584);
        List<TensorShape> extra = new ArrayList<>();
        extra.add(new TensorShape("visual.patch_embed.proj.weight", Shape.of(embed, channels, temporal, patch, patch)));
        for (int m = 0; m < depth; m++) {
            String p = "visual.blocks." + m + ".";
            extra.add(new TensorShape(p + "norm1.weight", Shape.of(embed)));
            extra.add(new TensorShape(p + "norm1.bias", Shape.of(embed)));
            extra.add(new TensorShape(p + "attn.qkv.weight", Shape.of(3L * embed, embed)));
            extra.add(new TensorShape(p + "attn.qkv.bias", Shape.of(3L * embed)));
            extra.add(new TensorShape(p + "attn.proj.weight", Shape.of(embed, embed)));
            extra.add(new TensorShape(p + "attn.proj.bias", Shape.of(embed)));
            extra.add(new TensorShape(p + "norm2.weight", Shape.of(embed)));
            extra.add(new TensorShape(p + "norm2.bias", Shape.of(embed)));
            extra.add(new TensorShape(p + "mlp.fc1.weight", Shape.of((long) embed * ratio, embed)));
            extra.add(new TensorShape(p + "mlp.fc1.bias", Shape.of((long) embed * ratio)));
            extra.add(new TensorShape(p + "mlp.fc2.weight", Shape.of(embed, (long) embed * ratio)));
            extra.add(new TensorShape(p + "mlp.fc2.bias", Shape.of(embed)));
        }
        long mergedDim = (long) embed * merge * merge;
        extra.add(new TensorShape("visual.merger.ln_q.weight", Shape.of(embed)));
        extra.add(new TensorShape("visual.merger.ln_q.bias", Shape.of(embed)));
        extra.add(new TensorShape("visual.merger.mlp.0.weight", Shape.of(mergedDim, mergedDim)));
        extra.add(new TensorShape("visual.merger.mlp.0.bias", Shape.of(mergedDim)));
        extra.add(new TensorShape("visual.merger.mlp.2.weight", Shape.of(outHidden, mergedDim)));
        extra.add(new TensorShape("visual.merger.mlp.2.bias", Shape.of(outHidden)));
        Integer imageToken = c.has("image_token_id") ? c.getInt("image_token_id", 151655) : 151655;
        return decoder(Family.QWEN2_VL, text, c, raw, d, "model.", "lm_head.weight", extra, imageToken);
    }

    private static void checkRopeScaling(ConfigReader c, Family family) {
        JsonNode scaling = c.raw("rope_scaling");
        boolean v5 = false;
        if (scaling == null || scaling.isNull()) {
            scaling = c.raw("rope_parameters"); // transformers v5 spelling; holds rope_theta too
            v5 = true;
        }
        if (scaling == null || scaling.isNull()) {
            return;
        }
        if (!scaling.isObject()) {
            throw new ModelConfigException(c.where() + ": " + (v5 ? "rope_parameters" : "rope_scaling") + " must be an object, got "
                    + scaling);
        }
        if (v5 && !scaling.has("rope_type") && !scaling.has("type")) {
            return; // rope_parameters with only rope_theta: plain RoPE
        }
        String type = scaling.has("rope_type") ? scaling.get("rope_type").asString("") : scaling.path("type").asString("");
        if (family == Family.QWEN2_VL && (type.equals("mrope") || type.equals("default"))) {
            return; // M-RoPE: identical to RoPE when all three position ids agree (text tokens)
        }
        if (type.equals("default")) {
            return;
        }
        throw new ModelConfigException(c.where() + ": rope_scaling " + scaling + " is not supported (only unscaled RoPE)");
    }

    private static double ropeTheta(ConfigReader c, double dflt) {
        if (c.has("rope_theta")) {
            return c.getDouble("rope_theta", dflt);
        }
        JsonNode params = c.raw("rope_parameters"); // transformers v5 spelling
        if (params != null && params.isObject() && params.has("rope_theta")) {
            return params.get("rope_theta").asDouble();
        }
        return dflt;
    }

    private static int positive(ConfigReader c, String field, int dflt) {
        int v = c.getInt(field, dflt);
        if (v <= 0) {
            throw new ModelConfigException(c.where() + ": field '" + field + "' must be positive, got " + v);
        }
        return v;
    }

    private static int fail(ConfigReader c, String message) {
        throw new ModelConfigException(c.where() + ": " + message);
    }
}
