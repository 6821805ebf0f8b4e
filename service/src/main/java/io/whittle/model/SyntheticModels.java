package io.whittle.model;

import io.whittle.model.ModelSpec.Family;
import io.whittle.model.ModelSpec.TensorShape;
import io.whittle.model.safetensors.TensorSource;
import io.whittle.tensor.DType;
import io.whittle.tensor.FloatTensor;
import io.whittle.tensor.HostAllocator;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import tools.jackson.databind.json.JsonMapper;
import tools.jackson.databind.node.ArrayNode;
import tools.jackson.databind.node.ObjectNode;

/**
 * Writes random models in the real Hugging Face layout of a family (config.json with the keys transformers reads,
 * hub tensor names, safetensors shards, and a word-level tokenizer.json whose tokens are {@code w<id>}), for
 * tests, benchmarks and the demo. Weights are N(0, 1/fan_in) so activations stay O(1) through depth, norms are
 * 1 + N(0, 0.1^2) and embeddings N(0, 1); every tensor's values depend only on the seed and its name.
 */
public final class SyntheticModels {

    private static final JsonMapper JSON = JsonMapper.builder().build();

    /** Sizes of a synthetic model; MoE fields are ignored for dense families. */
    public record Request(Family family, int layers, int hidden, int intermediate, int experts, int topK,
                          int moeIntermediate, int sharedIntermediate, int heads, int kvHeads, int vocab, long seed,
                          DType dtype, int shards) {
    }

    private SyntheticModels() {
    }

    public static ObjectNode config(Request r) {
        validate(r);
        ObjectNode c = JSON.createObjectNode();
        ObjectNode text = c;
        if (r.family() == Family.LLAVA) {
            c.putArray("architectures").add("LlavaForConditionalGeneration");
            c.put("model_type", "llava");
            c.put("image_token_index", Math.min(32000, r.vocab() - 1));
            c.put("projector_hidden_act", "gelu");
            c.put("vision_feature_layer", -2);
            c.put("vision_feature_select_strategy", "default");
            c.put("tie_word_embeddings", false);
            c.put("torch_dtype", r.dtype().torchName());
            text = c.putObject("text_config");
            text.put("model_type", "llama");
            ObjectNode vision = c.putObject("vision_config");
            vision.put("model_type", "clip_vision_model");
            vision.put("hidden_size", 64);
            vision.put("intermediate_size", 128);
            vision.put("num_hidden_layers", 2);
            vision.put("num_attention_heads", 2);
            vision.put("image_size", 336);
            vision.put("patch_size", 14);
            vision.put("projection_dim", 64);
        }
        String arch = switch (r.family()) {
            case LLAMA, LLAVA -> "LlamaForCausalLM";
            case MIXTRAL -> "MixtralForCausalLM";
            case QWEN2_MOE -> "Qwen2MoeForCausalLM";
            case QWEN3_MOE -> "Qwen3MoeForCausalLM";
            case OLMOE -> "OlmoeForCausalLM";
            case DEEPSEEK -> "DeepseekForCausalLM";
            case QWEN2_VL -> throw new IllegalArgumentException("synth does not support qwen2_vl");
        };
        if (r.family() != Family.LLAVA) {
            text.putArray("architectures").add(arch);
            text.put("model_type", r.family().modelType());
        }
        text.put("vocab_size", r.vocab());
        text.put("hidden_size", r.hidden());
        text.put("num_hidden_layers", r.layers());
        text.put("num_attention_heads", r.heads());
        text.put("num_key_value_heads", r.kvHeads());
        text.put("hidden_act", "silu");
        text.put("max_position_embeddings", 4096);
        text.put("rms_norm_eps", 1e-5);
        text.put("tie_word_embeddings", false);
        text.put("torch_dtype", r.dtype().torchName());
        text.put("bos_token_id", 1);
        text.put("eos_token_id", 2);
        int expertWidth = r.moeIntermediate() > 0 ? r.moeIntermediate() : r.intermediate();
        switch (r.family()) {
            case LLAMA, LLAVA -> {
                text.put("intermediate_size", r.intermediate());
                text.put("rope_theta", 10000.0);
                text.put("attention_bias", false);
            }
            case MIXTRAL -> {
                text.put("intermediate_size", expertWidth);
                text.put("num_local_experts", r.experts());
                text.put("num_experts_per_tok", r.topK());
                text.put("rope_theta", 1e6);
                text.putNull("sliding_window");
            }
            case QWEN2_MOE -> {
                text.put("intermediate_size", r.intermediate());
                text.put("moe_intermediate_size", expertWidth);
                text.put("shared_expert_intermediate_size", r.sharedIntermediate() > 0 ? r.sharedIntermediate() : r.intermediate());
                text.put("num_experts", r.experts());
                text.put("num_experts_per_tok", r.topK());
                text.put("decoder_sparse_step", 1);
                text.putArray("mlp_only_layers");
                text.put("norm_topk_prob", false);
                text.put("rope_theta", 1e6);
                text.put("use_sliding_window", false);
            }
            case QWEN3_MOE -> {
                text.put("intermediate_size", r.intermediate());
                text.put("moe_intermediate_size", expertWidth);
                text.put("num_experts", r.experts());
                text.put("num_experts_per_tok", r.topK());
                text.put("head_dim", r.hidden() / r.heads());
                text.put("decoder_sparse_step", 1);
                text.putArray("mlp_only_layers");
                text.put("norm_topk_prob", true);
                text.put("attention_bias", false);
                text.put("rope_theta", 1e6);
                text.put("use_sliding_window", false);
            }
            case OLMOE -> {
                text.put("intermediate_size", expertWidth);
                text.put("num_experts", r.experts());
                text.put("num_experts_per_tok", r.topK());
                text.put("norm_topk_prob", false);
                text.putNull("clip_qkv");
                text.put("attention_bias", false);
                text.put("rope_theta", 10000.0);
            }
            case DEEPSEEK -> {
                int shared = r.sharedIntermediate();
                if (shared % expertWidth != 0) {
                    throw new IllegalArgumentException("deepseek stores shared experts as n_shared_experts x moe_intermediate_size: "
                            + "--shared-intermediate " + shared + " is not a multiple of --moe-intermediate " + expertWidth);
                }
                text.put("intermediate_size", r.intermediate());
                text.put("moe_intermediate_size", expertWidth);
                text.put("n_routed_experts", r.experts());
                if (shared > 0) {
                    text.put("n_shared_experts", shared / expertWidth);
                } else {
                    text.putNull("n_shared_experts");
                }
                text.put("num_experts_per_tok", r.topK());
                text.put("first_k_dense_replace", 1);
                text.put("moe_layer_freq", 1);
                text.put("norm_topk_prob", false);
                text.put("scoring_func", "softmax");
                text.put("attention_bias", false);
                text.put("rope_theta", 10000.0);
            }
            default -> throw new IllegalStateException("unreachable");
        }
        return c;
    }

    private static void validate(Request r) {
        requirePositive("layers", r.layers());
        requirePositive("hidden", r.hidden());
        requirePositive("intermediate", r.intermediate());
        requirePositive("heads", r.heads());
        requirePositive("kv-heads", r.kvHeads());
        requirePositive("vocab", r.vocab());
        requirePositive("shards", r.shards());
        if (r.hidden() % r.heads() != 0 || (r.hidden() / r.heads()) % 2 != 0) {
            throw new IllegalArgumentException("--hidden " + r.hidden() + " must be divisible by --heads " + r.heads()
                    + " into an even head size");
        }
        if (r.heads() % r.kvHeads() != 0) {
            throw new IllegalArgumentException("--heads " + r.heads() + " must be a multiple of --kv-heads " + r.kvHeads());
        }
        boolean moe = switch (r.family()) {
            case MIXTRAL, QWEN2_MOE, QWEN3_MOE, OLMOE, DEEPSEEK -> true;
            default -> false;
        };
        if (moe) {
            requirePositive("experts", r.experts());
            requirePositive("top-k", r.topK());
            if (r.topK() > r.experts()) {
                throw new IllegalArgumentException("--top-k " + r.topK() + " exceeds --experts " + r.experts());
            }
        }
        if (!r.dtype().isFloatingPoint() || r.dtype() == DType.F8_E4M3) {
            throw new IllegalArgumentException("--dtype must be bf16, f16 or f32");
        }
    }

    private static void requirePositive(String flag, int v) {
        if (v <= 0) {
            throw new IllegalArgumentException("--" + flag + " must be positive (got " + v + ")");
        }
    }

    /** Writes the model to {@code out} (which must not exist or be empty); returns its spec. */
    public static ModelSpec write(Request r, Path out) {
        return write(r, config(r), out);
    }

    /**
     * As {@link #write(Request, Path)} with a config made by {@link #config} and then edited (e.g. a smaller LLaVA
     * vision tower); every tensor the edited config implies is written.
     */
    public static ModelSpec write(Request r, ObjectNode config, Path out) {
        ModelSpec spec = ModelSpecs.fromConfig(config, "synthetic " + r.family().modelType());
        List<TensorShape> tensors = spec.expectedTensors();
        long total = tensors.stream().mapToLong(t -> t.shape().numel() * r.dtype().byteSize()).sum();
        try (CheckpointWriter writer = CheckpointWriter.create(out, Long.MAX_VALUE)) {
            List<TensorSource> group = new ArrayList<>();
            long written = 0;
            int shard = 1;
            for (TensorShape t : tensors) {
                group.add(randomTensor(t, r.dtype(), r.seed()));
                written += t.shape().numel() * r.dtype().byteSize();
                if (shard < r.shards() && written >= total * shard / r.shards()) {
                    writer.writeTensors(group);
                    group = new ArrayList<>();
                    shard++;
                }
            }
            if (!group.isEmpty()) {
                writer.writeTensors(group);
            }
            writer.writeJson("config.json", config);
            writer.writeJson("tokenizer.json", wordLevelTokenizer(r.vocab()));
            writer.commit();
        }
        return spec;
    }

    /** A word-level tokenizer: token {@code w<i>} has id i, {@code <unk>} is 0; split on whitespace. */
    public static ObjectNode wordLevelTokenizer(int vocab) {
        ObjectNode tok = JSON.createObjectNode();
        tok.put("version", "1.0");
        tok.putNull("truncation");
        tok.putNull("padding");
        ArrayNode added = tok.putArray("added_tokens");
        ObjectNode unk = added.addObject();
        unk.put("id", 0);
        unk.put("content", "<unk>");
        unk.put("single_word", false);
        unk.put("lstrip", false);
        unk.put("rstrip", false);
        unk.put("normalized", false);
        unk.put("special", true);
        tok.putNull("normalizer");
        tok.putObject("pre_tokenizer").put("type", "Whitespace");
        tok.putNull("post_processor");
        tok.putNull("decoder");
        ObjectNode model = tok.putObject("model");
        model.put("type", "WordLevel");
        ObjectNode v = model.putObject("vocab");
        v.put("<unk>", 0);
        for (int i = 1; i < vocab; i++) {
            v.put("w" + i, i);
        }
        model.put("unk_token", "<unk>");
        return tok;
    }

    private static TensorSource randomTensor(TensorShape t, DType dtype, long seed) {
        return TensorSource.lazy(t.name(), dtype, t.shape(), sink -> {
            try (FloatTensor values = HostAllocator.root().allocate(t.shape(), t.name())) {
                fill(t, values, seed);
                TensorSource.ofFloat(t.name(), dtype, values).writeTo(sink);
            }
        });
    }

    static void fill(TensorShape t, FloatTensor values, long seed) {
        Random random = new Random(seed * 1_000_003L + t.name().hashCode());
        String n = t.name();
        long count = values.numel();
        boolean norm = n.endsWith("norm.weight") || n.endsWith("layernorm.weight") || n.endsWith("layrnorm.weight")
                || n.contains("layer_norm") || n.contains("ln_q");
        boolean bias = n.endsWith(".bias");
        boolean embedding = n.endsWith("embed_tokens.weight") || n.endsWith("class_embedding")
                || n.endsWith("position_embedding.weight");
        double std;
        if (norm && !bias) {
            for (long i = 0; i < count; i++) {
                values.set(i, (float) (1.0 + 0.1 * random.nextGaussian()));
            }
            return;
        } else if (bias) {
            std = 0.02;
        } else if (embedding) {
            std = 1.0;
        } else {
            long fanIn = count / Math.max(1, t.shape().dim(0));
            std = 1.0 / Math.sqrt(Math.max(1, fanIn));
        }
        for (long i = 0; i < count; i++) {
            values.set(i, (float) (std * random.nextGaussian()));
        }
    }

}
