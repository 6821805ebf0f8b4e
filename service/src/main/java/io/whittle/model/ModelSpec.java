package io.whittle.model;

import io.whittle.tensor.DType;
import io.whittle.tensor.Shape;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import java.util.stream.Collectors;
import tools.jackson.databind.JsonNode;

/**
 * What Whittle needs to know of a checkpoint: the decoder's sizes and family rules (norms, biases, routing) and
 * the exact on-disk (hub) tensor names and shapes. Built from config.json by {@link ModelSpecs}, with the
 * transformers class defaults for every field a config leaves out.
 */
public final class ModelSpec {

    /** The supported {@code model_type}s. */
    public enum Family {
        LLAMA("llama"), MIXTRAL("mixtral"), QWEN2_MOE("qwen2_moe"), QWEN3_MOE("qwen3_moe"), OLMOE("olmoe"),
        DEEPSEEK("deepseek"), LLAVA("llava"), QWEN2_VL("qwen2_vl");

        private final String modelType;

        Family(String modelType) {
            this.modelType = modelType;
        }

        public String modelType() {
            return modelType;
        }

        public static Family fromModelType(String modelType) {
            for (Family f : values()) {
                if (f.modelType.equals(modelType)) {
                    return f;
                }
            }
            throw new ModelConfigException("unsupported model_type '" + modelType + "'; supported: " + supportedModelTypes());
        }

        public static String supportedModelTypes() {
            return Arrays.stream(values()).map(Family::modelType).collect(Collectors.joining(", "));
        }
    }

    /** Where q/k normalisation happens: none, per head over head_dim (Qwen3), or over the whole projection (OLMoE). */
    public enum QkNorm { NONE, PER_HEAD, WHOLE }

    /** How a shared expert's output is scaled: not at all (DeepSeek) or by sigmoid(shared_expert_gate . x) (Qwen2-MoE). */
    public enum SharedGate { NONE, SIGMOID }

    /**
     * MoE routing rules: softmax over all experts, top-k, optional renormalisation of the k weights (with
     * {@code renormEpsilon} added to the denominator, as DeepSeek's remote code does), optional shared expert.
     */
    public record Moe(int experts, int topK, int expertIntermediate, int sharedIntermediate, SharedGate sharedGate,
                      boolean renormalize, double renormEpsilon) {
        public boolean hasSharedExpert() {
            return sharedIntermediate > 0;
        }
    }

    /** The three projections of one SwiGLU MLP (dense, routed expert or shared expert). */
    public record Mlp(String gate, String up, String down) {
        public List<String> all() {
            return List.of(gate, up, down);
        }
    }

    /** Tensor names of one MoE block. {@code shared} and {@code sharedGate} are null where the family has none. */
    public record MoeNames(String router, List<Mlp> experts, Mlp shared, String sharedGate) {
    }

    /**
     * Tensor names of one decoder layer. Biases and q/k norms are null where the family has none; exactly one of
     * {@code dense} and {@code moe} is non-null.
     */
    public record LayerNames(int index, String inputNorm, String postNorm, String q, String k, String v, String o,
                             String qBias, String kBias, String vBias, String qNorm, String kNorm, Mlp dense,
                             MoeNames moe) {
        public boolean isMoe() {
            return moe != null;
        }

        /** Every tensor of the layer, in a stable order. */
        public List<String> allTensors() {
            List<String> out = new ArrayList<>();
            out.add(inputNorm);
            out.addAll(nonNull(q, qBias, k, kBias, v, vBias, o, qNorm, kNorm));
            out.add(postNorm);
            if (dense != null) {
                out.addAll(dense.all());
            } else {
                out.add(moe.router());
                for (Mlp e : moe.experts()) {
                    out.addAll(e.all());
                }
                if (moe.shared() != null) {
                    out.addAll(moe.shared().all());
                }
                if (moe.sharedGate() != null) {
                    out.add(moe.sharedGate());
                }
            }
            return out;
        }

        private static List<String> nonNull(String... names) {
            return Arrays.stream(names).filter(n -> n != null).toList();
        }
    }

    /** A tensor the spec expects, with its shape. */
    public record TensorShape(String name, Shape shape) {
    }

    private final Family family;
    private final String prefix;
    private final String lmHead;
    private final int vocabSize;
    private final int hiddenSize;
    private final int numLayers;
    private final int numHeads;
    private final int numKvHeads;
    private final int headDim;
    private final int intermediateSize;
    private final double rmsNormEps;
    private final double ropeTheta;
    private final boolean tieWordEmbeddings;
    private final boolean qkvBias;
    private final QkNorm qkNorm;
    private final Moe moe;
    private final Set<Integer> moeLayers;
    private final DType dtype;
    private final List<TensorShape> extraTensors;
    private final Integer imageTokenId;
    private final JsonNode config;

    ModelSpec(Family family, String prefix, String lmHead, int vocabSize, int hiddenSize, int numLayers, int numHeads,
              int numKvHeads, int headDim, int intermediateSize, double rmsNormEps, double ropeTheta,
              boolean tieWordEmbeddings, boolean qkvBias, QkNorm qkNorm, Moe moe, Set<Integer> moeLayers, DType dtype,
              List<TensorShape> extraTensors, Integer imageTokenId, JsonNode config) {
        this.family = family;
        this.prefix = prefix;
        this.lmHead = lmHead;
        this.vocabSize = vocabSize;
        this.hiddenSize = hiddenSize;
        this.numLayers = numLayers;
        this.numHeads = numHeads;
        this.numKvHeads = numKvHeads;
        this.headDim = headDim;
        this.intermediateSize = intermediateSize;
        this.rmsNormEps = rmsNormEps;
        this.ropeTheta = ropeTheta;
        this.tieWordEmbeddings = tieWordEmbeddings;
        this.qkvBias = qkvBias;
        this.qkNorm = qkNorm;
        this.moe = moe;
        this.moeLayers = Collections.unmodifiableSet(new TreeSet<>(moeLayers));
        this.dtype = dtype;
        this.extraTensors = List.copyOf(extraTensors);
        this.imageTokenId = imageTokenId;
        this.config = config;
    }

    public Family family() {
        return family;
    }

    public String modelType() {
        return family.modelType();
    }

    public int vocabSize() {
        return vocabSize;
    }

    public int hiddenSize() {
        return hiddenSize;
    }

    public int numLayers() {
        return numLayers;
    }

    public int numHeads() {
        return numHeads;
    }

    public int numKvHeads() {
        return numKvHeads;
    }

    public int headDim() {
        return headDim;
    }

    /** Width of the dense MLP layers. */
    public int intermediateSize() {
        return intermediateSize;
    }

    public double rmsNormEps() {
        return rmsNormEps;
    }

    public double ropeTheta() {
        return ropeTheta;
    }

    public boolean tieWordEmbeddings() {
        return tieWordEmbeddings;
    }

    public boolean qkvBias() {
        return qkvBias;
    }

    public QkNorm qkNorm() {
        return qkNorm;
    }

    /** The MoE rules, or null for a dense model. */
    public Moe moe() {
        return moe;
    }

    public boolean isMoeModel() {
        return moe != null && !moeLayers.isEmpty();
    }

    public boolean isMoeLayer(int layer) {
        return moeLayers.contains(layer);
    }

    public Set<Integer> moeLayers() {
        return moeLayers;
    }

    /** Storage dtype named by config.json ({@code torch_dtype}), BF16 when absent. */
    public DType dtype() {
        return dtype;
    }

    /** The image placeholder token id of a multimodal model, or null. */
    public Integer imageTokenId() {
        return imageTokenId;
    }

    /** The parsed config.json, as read. */
    public JsonNode config() {
        return config;
    }

    /** Name prefix of the decoder ({@code model.} or {@code language_model.model.} for LLaVA). */
    public String decoderPrefix() {
        return prefix;
    }

    public String embedTokens() {
        return prefix + "embed_tokens.weight";
    }

    public String finalNorm() {
        return prefix + "norm.weight";
    }

    /** The lm_head tensor; with tied embeddings this is the embedding tensor. */
    public String lmHead() {
        return tieWordEmbeddings ? embedTokens() : lmHead;
    }

    public LayerNames layer(int l) {
        if (l < 0 || l >= numLayers) {
            throw new IndexOutOfBoundsException("layer " + l + " of a " + numLayers + "-layer model");
        }
        String p = prefix + "layers." + l + ".";
        String a = p + "self_attn.";
        Mlp dense = null;
        MoeNames moeNames = null;
        if (isMoeLayer(l)) {
            moeNames = moeNames(p);
        } else {
            dense = new Mlp(p + "mlp.gate_proj.weight", p + "mlp.up_proj.weight", p + "mlp.down_proj.weight");
        }
        return new LayerNames(l, p + "input_layernorm.weight", p + "post_attention_layernorm.weight",
                a + "q_proj.weight", a + "k_proj.weight", a + "v_proj.weight", a + "o_proj.weight",
                qkvBias ? a + "q_proj.bias" : null, qkvBias ? a + "k_proj.bias" : null, qkvBias ? a + "v_proj.bias" : null,
                qkNorm == QkNorm.NONE ? null : a + "q_norm.weight", qkNorm == QkNorm.NONE ? null : a + "k_norm.weight",
                dense, moeNames);
    }

    private MoeNames moeNames(String p) {
        List<Mlp> experts = new ArrayList<>(moe.experts());
        if (family == Family.MIXTRAL) {
            String b = p + "block_sparse_moe.";
            for (int e = 0; e < moe.experts(); e++) {
                String x = b + "experts." + e + ".";
                experts.add(new Mlp(x + "w1.weight", x + "w3.weight", x + "w2.weight"));
            }
            return new MoeNames(b + "gate.weight", experts, null, null);
        }
        String m = p + "mlp.";
        for (int e = 0; e < moe.experts(); e++) {
            String x = m + "experts." + e + ".";
            experts.add(new Mlp(x + "gate_proj.weight", x + "up_proj.weight", x + "down_proj.weight"));
        }
        Mlp shared = null;
        String sharedGate = null;
        if (moe.hasSharedExpert()) {
            String s = m + (family == Family.DEEPSEEK ? "shared_experts." : "shared_expert.");
            shared = new Mlp(s + "gate_proj.weight", s + "up_proj.weight", s + "down_proj.weight");
            if (moe.sharedGate() == SharedGate.SIGMOID) {
                sharedGate = m + "shared_expert_gate.weight";
            }
        }
        return new MoeNames(m + "gate.weight", experts, shared, sharedGate);
    }

    /** Every tensor the checkpoint must contain, with its shape: the language model, then vision parts. */
    public List<TensorShape> expectedTensors() {
        List<TensorShape> out = new ArrayList<>();
        out.add(new TensorShape(embedTokens(), Shape.of(vocabSize, hiddenSize)));
        int qDim = numHeads * headDim;
        int kvDim = numKvHeads * headDim;
        for (int l = 0; l < numLayers; l++) {
            LayerNames n = layer(l);
            out.add(new TensorShape(n.inputNorm(), Shape.of(hiddenSize)));
            out.add(new TensorShape(n.q(), Shape.of(qDim, hiddenSize)));
            if (n.qBias() != null) {
                out.add(new TensorShape(n.qBias(), Shape.of(qDim)));
            }
            out.add(new TensorShape(n.k(), Shape.of(kvDim, hiddenSize)));
            if (n.kBias() != null) {
                out.add(new TensorShape(n.kBias(), Shape.of(kvDim)));
            }
            out.add(new TensorShape(n.v(), Shape.of(kvDim, hiddenSize)));
            if (n.vBias() != null) {
                out.add(new TensorShape(n.vBias(), Shape.of(kvDim)));
            }
            out.add(new TensorShape(n.o(), Shape.of(hiddenSize, qDim)));
            if (n.qNorm() != null) {
                out.add(new TensorShape(n.qNorm(), Shape.of(qkNorm == QkNorm.PER_HEAD ? headDim : qDim)));
                out.add(new TensorShape(n.kNorm(), Shape.of(qkNorm == QkNorm.PER_HEAD ? headDim : kvDim)));
            }
            out.add(new TensorShape(n.postNorm(), Shape.of(hiddenSize)));
            if (n.dense() != null) {
                addMlp(out, n.dense(), intermediateSize);
            } else {
                out.add(new TensorShape(n.moe().router(), Shape.of(moe.experts(), hiddenSize)));
                for (Mlp e : n.moe().experts()) {
                    addMlp(out, e, moe.expertIntermediate());
                }
                if (n.moe().shared() != null) {
                    addMlp(out, n.moe().shared(), moe.sharedIntermediate());
                }
                if (n.moe().sharedGate() != null) {
                    out.add(new TensorShape(n.moe().sharedGate(), Shape.of(1, hiddenSize)));
                }
            }
        }
        out.add(new TensorShape(finalNorm(), Shape.of(hiddenSize)));
        if (!tieWordEmbeddings) {
            out.add(new TensorShape(lmHead, Shape.of(vocabSize, hiddenSize)));
        }
        out.addAll(extraTensors);
        return out;
    }

    private void addMlp(List<TensorShape> out, Mlp mlp, int width) {
        out.add(new TensorShape(mlp.gate(), Shape.of(width, hiddenSize)));
        out.add(new TensorShape(mlp.up(), Shape.of(width, hiddenSize)));
        out.add(new TensorShape(mlp.down(), Shape.of(hiddenSize, width)));
    }

    /** Parameter count of the whole model as the spec describes it (shared tensors counted once). */
    public long parameterCount() {
        return expectedTensors().stream().mapToLong(t -> t.shape().numel()).sum();
    }

    /** Number of micro-experts (MoE channels) in one MoE layer: experts x expert width + shared width. */
    public long moeChannelsPerLayer() {
        return moe == null ? 0 : (long) moe.experts() * moe.expertIntermediate() + moe.sharedIntermediate();
    }

    /**
     * Checks that every expected tensor exists in the checkpoint with the expected shape; returns one line per
     * problem (empty when the checkpoint matches).
     */
    public List<String> validate(Checkpoint checkpoint) {
        List<String> problems = new ArrayList<>();
        for (TensorShape t : expectedTensors()) {
            if (!checkpoint.contains(t.name())) {
                problems.add("missing tensor '" + t.name() + "' (expected shape " + t.shape() + ")");
            } else {
                Shape actual = checkpoint.entry(t.name()).shape();
                if (!actual.equals(t.shape())) {
                    problems.add("tensor '" + t.name() + "' has shape " + actual + ", expected " + t.shape());
                }
            }
        }
        return problems;
    }

    /** Throws a {@link ModelConfigException} listing every problem {@link #validate} finds. */
    public void requireValid(Checkpoint checkpoint) {
        List<String> problems = validate(checkpoint);
        if (!problems.isEmpty()) {
            int shown = Math.min(problems.size(), 20);
            throw new ModelConfigException(checkpoint.directory() + ": checkpoint does not match its " + modelType()
                    + " config (" + problems.size() + " problem(s)):\n  " + String.join("\n  ", problems.subList(0, shown))
                    + (problems.size() > shown ? "\n  ... and " + (problems.size() - shown) + " more" : ""));
        }
    }
}
