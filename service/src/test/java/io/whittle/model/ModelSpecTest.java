package io.whittle.model;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;

import io.whittle.model.ModelSpec.Family;
import io.whittle.model.ModelSpec.LayerNames;
import io.whittle.model.ModelSpec.QkNorm;
import io.whittle.model.ModelSpec.SharedGate;
import io.whittle.model.ModelSpec.TensorShape;
import io.whittle.model.safetensors.TensorSource;
import io.whittle.tensor.DType;
import io.whittle.tensor.Shape;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.URISyntaxException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.IntStream;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;
import tools.jackson.databind.node.ObjectNode;

/**
 * config.json -> {@link ModelSpec} for every supported family, checked against the hub checkpoints: the parameter
 * counts of tensor-names.md (which match the official index.json total_size) and its name/shape tables, parsed
 * from the file itself.
 */
class ModelSpecTest {

    private static final JsonMapper JSON = JsonMapper.builder().build();

    /** Parameter counts from tensor-names.md (Open-LLM-Leaderboard params = index total_size / 2). */
    private static final Map<String, Long> PARAMS = Map.ofEntries(
            Map.entry("mixtral-8x7b.config.json", 46_702_792_704L),
            Map.entry("qwen1.5-moe-a2.7b.config.json", 14_315_784_192L),
            Map.entry("qwen2-57b-a14b.config.json", 57_408_658_944L),
            Map.entry("deepseek-moe-16b-base.config.json", 16_375_728_128L),
            Map.entry("olmoe-1b-7b-0924.config.json", 6_919_161_856L),
            Map.entry("qwen3-30b-a3b.config.json", 30_532_122_624L),
            Map.entry("qwen3-30b-a3b-w4a16.config.example.json", 30_532_122_624L), // same model, quantized output
            Map.entry("llama-2-7b-hf.config.json", 6_738_415_616L),
            Map.entry("vicuna-7b-v1.5.config.json", 6_738_415_616L),
            // not in the table; summed by hand from the tensor-names.md rows:
            // LM = Llama-2 + 2 x 64 x 4096 (vocab 32064) = 6,738,939,904; CLIP ViT-L/14-336 = 303,507,456
            // (embeddings 1,194,048 incl. class; pre/post LN 4,096; 24 x 12,596,224); projector 20,979,712
            Map.entry("llava-1.5-7b-hf.config.json", 7_063_427_072L),
            // LM 7,615,616,512 (28 x 233,057,792 + 2 x 152064 x 3584 + 3584); vision 675,759,104
            // (patch 1,505,280; 32 x 19,677,440; merger 44,575,744): the published 8.29B
            Map.entry("qwen2-vl-7b-instruct.config.json", 8_291_375_616L));

    @TempDir
    Path tmp;

    // ---------------------------------------------------------------- every fixture

    @Test
    void everyFixtureConfigParsesAndHasTheHubParameterCount() throws IOException {
        List<String> parsed = new ArrayList<>();
        try (Stream<Path> files = Files.list(fixtureDir())) {
            for (Path p : files.sorted().toList()) {
                String name = p.getFileName().toString();
                if (!name.endsWith(".json") || !Files.readString(p).contains("\"model_type\"")) {
                    continue;
                }
                ModelSpec spec = ModelSpecs.load(p);
                assertThat(PARAMS).as("a count for " + name).containsKey(name);
                assertEquals(PARAMS.get(name), spec.parameterCount(), "parameter count of " + name);
                parsed.add(name);
            }
        }
        assertThat(parsed).containsExactlyInAnyOrderElementsOf(PARAMS.keySet());
    }

    @Test
    void everyTensorNamesTableMatchesTheSpecExactly() throws IOException {
        Map<String, String> sectionToConfig = new LinkedHashMap<>();
        sectionToConfig.put("Mixtral-8x7B-v0.1", "mixtral-8x7b.config.json");
        sectionToConfig.put("Qwen1.5-MoE-A2.7B", "qwen1.5-moe-a2.7b.config.json");
        sectionToConfig.put("Qwen2-57B-A14B", "qwen2-57b-a14b.config.json");
        sectionToConfig.put("deepseek-moe-16b-base", "deepseek-moe-16b-base.config.json");
        sectionToConfig.put("OLMoE-1B-7B-0924", "olmoe-1b-7b-0924.config.json");
        sectionToConfig.put("Qwen3-30B-A3B", "qwen3-30b-a3b.config.json");
        sectionToConfig.put("Llama-2-7b-hf / vicuna-7b-v1.5", "llama-2-7b-hf.config.json");
        sectionToConfig.put("llava-hf/llava-1.5-7b-hf", "llava-1.5-7b-hf.config.json");
        sectionToConfig.put("Qwen2-VL-7B-Instruct", "qwen2-vl-7b-instruct.config.json");
        Map<String, String> sections = sections(Files.readString(fixtureDir().resolve("tensor-names.md")));
        assertThat(sections.keySet()).containsExactlyInAnyOrderElementsOf(sectionToConfig.keySet());
        for (Map.Entry<String, String> s : sectionToConfig.entrySet()) {
            String text = sections.get(s.getKey());
            ModelSpec spec = load(s.getValue());
            int[] layers = range(text, "`N` = (\\d+)\\.\\.(\\d+)");
            int[] vision = text.contains("M = ") ? range(text, "M = (\\d+)\\.\\.(\\d+)") : null;
            Map<String, Shape> table = expandTable(text, layers, vision);
            int lastExpert = spec.moe() == null ? -1 : spec.moe().experts() - 1;
            // the spec's tensors, restricted to what the table covers: its layer range and experts 0 and E-1
            Map<String, Shape> specTensors = new TreeMap<>();
            Pattern layer = Pattern.compile("model\\.layers\\.(\\d+)\\.");
            Pattern expert = Pattern.compile("\\.experts\\.(\\d+)\\.");
            for (TensorShape t : spec.expectedTensors()) {
                Matcher l = layer.matcher(t.name());
                if (l.find() && (Integer.parseInt(l.group(1)) < layers[0] || Integer.parseInt(l.group(1)) > layers[1])) {
                    continue;
                }
                Matcher e = expert.matcher(t.name());
                if (e.find() && Integer.parseInt(e.group(1)) != 0 && Integer.parseInt(e.group(1)) != lastExpert) {
                    continue;
                }
                assertThat(specTensors.put(t.name(), t.shape())).as("duplicate " + t.name()).isNull();
            }
            assertThat(specTensors).as(s.getKey()).containsExactlyEntriesOf(new TreeMap<>(table));
        }
    }

    /** Sections of tensor-names.md by heading text (up to the first " ("). */
    private static Map<String, String> sections(String md) {
        Map<String, String> out = new LinkedHashMap<>();
        String[] parts = md.split("\n## ");
        for (int i = 1; i < parts.length; i++) {
            String heading = parts[i].substring(0, parts[i].indexOf('\n'));
            out.put(heading.contains(" (") ? heading.substring(0, heading.indexOf(" (")) : heading, parts[i]);
        }
        return out;
    }

    private static int[] range(String text, String regex) {
        Matcher m = Pattern.compile(regex).matcher(text);
        assertThat(m.find()).as(regex).isTrue();
        return new int[] {Integer.parseInt(m.group(1)), Integer.parseInt(m.group(2))};
    }

    /** Table rows `| `name` | [a, b] |`, with {x,y} alternatives, N over the decoder layers and M over vision layers. */
    private static Map<String, Shape> expandTable(String text, int[] layers, int[] vision) {
        Map<String, Shape> out = new TreeMap<>();
        Matcher row = Pattern.compile("(?m)^\\| `([^`]+)` \\| \\[([0-9, ]+)\\] \\|$").matcher(text);
        while (row.find()) {
            long[] dims = Arrays.stream(row.group(2).split(",\\s*")).mapToLong(Long::parseLong).toArray();
            for (String name : braces(row.group(1))) {
                List<String> names = new ArrayList<>();
                if (name.contains(".N.")) {
                    IntStream.rangeClosed(layers[0], layers[1]).forEach(n -> names.add(name.replace(".N.", "." + n + ".")));
                } else if (name.contains(".M.")) {
                    IntStream.rangeClosed(vision[0], vision[1]).forEach(m -> names.add(name.replace(".M.", "." + m + ".")));
                } else {
                    names.add(name);
                }
                names.forEach(n -> assertThat(out.put(n, Shape.of(dims))).as("duplicate row " + n).isNull());
            }
        }
        return out;
    }

    private static List<String> braces(String name) {
        int open = name.indexOf('{');
        if (open < 0) {
            return List.of(name);
        }
        int close = name.indexOf('}', open);
        List<String> out = new ArrayList<>();
        for (String alt : name.substring(open + 1, close).split(",")) {
            out.addAll(braces(name.substring(0, open) + alt + name.substring(close + 1)));
        }
        return out;
    }

    // ---------------------------------------------------------------- family rules

    @Test
    void deepseekLayerZeroIsDenseAndTheRestMoe() {
        ModelSpec s = load("deepseek-moe-16b-base.config.json");
        assertEquals(Family.DEEPSEEK, s.family());
        assertThat(s.isMoeLayer(0)).isFalse();
        assertThat(s.moeLayers()).containsExactlyElementsOf(IntStream.rangeClosed(1, 27).boxed().toList());
        LayerNames l0 = s.layer(0);
        assertThat(l0.isMoe()).isFalse();
        assertEquals("model.layers.0.mlp.gate_proj.weight", l0.dense().gate());
        Map<String, Shape> shapes = shapes(s);
        assertEquals(Shape.of(10944, 2048), shapes.get("model.layers.0.mlp.gate_proj.weight"));
        assertEquals(Shape.of(10944, 2048), shapes.get("model.layers.0.mlp.up_proj.weight"));
        assertEquals(Shape.of(2048, 10944), shapes.get("model.layers.0.mlp.down_proj.weight"));
        assertThat(shapes).doesNotContainKey("model.layers.0.mlp.gate.weight");
        assertEquals(Shape.of(2816, 2048), shapes.get("model.layers.1.mlp.shared_experts.gate_proj.weight"));
        assertEquals(Shape.of(64, 2048), shapes.get("model.layers.27.mlp.gate.weight"));
        assertThat(s.moe().experts()).isEqualTo(64);
        assertThat(s.moe().topK()).isEqualTo(6);
        assertThat(s.moe().sharedIntermediate()).isEqualTo(2816);
        assertThat(s.moe().sharedGate()).isEqualTo(SharedGate.NONE);
        assertThat(s.moe().renormalize()).isFalse();
        assertNull(s.layer(1).moe().sharedGate());
        assertEquals(1e-6, s.rmsNormEps());
        assertEquals(64L * 1408 + 2816, s.moeChannelsPerLayer());
    }

    @Test
    void qwen2MoeHasQkvBiasesAndASigmoidGatedSharedExpert() {
        ModelSpec s = load("qwen1.5-moe-a2.7b.config.json");
        assertThat(s.qkvBias()).isTrue();
        LayerNames l = s.layer(5);
        assertEquals("model.layers.5.self_attn.q_proj.bias", l.qBias());
        assertEquals("model.layers.5.self_attn.k_proj.bias", l.kBias());
        assertEquals("model.layers.5.self_attn.v_proj.bias", l.vBias());
        assertEquals(SharedGate.SIGMOID, s.moe().sharedGate());
        assertEquals("model.layers.5.mlp.shared_expert_gate.weight", l.moe().sharedGate());
        assertEquals("model.layers.5.mlp.shared_expert.down_proj.weight", l.moe().shared().down());
        assertThat(l.moe().experts()).hasSize(60);
        assertThat(s.moe().topK()).isEqualTo(4);
        assertThat(s.moe().renormalize()).isFalse();
        Map<String, Shape> shapes = shapes(s);
        assertEquals(Shape.of(1, 2048), shapes.get("model.layers.5.mlp.shared_expert_gate.weight"));
        assertEquals(Shape.of(2048), shapes.get("model.layers.5.self_attn.q_proj.bias"));
        assertThat(shapes).doesNotContainKey("model.layers.5.self_attn.o_proj.bias");
        assertEquals(Shape.of(512), shapes(load("qwen2-57b-a14b.config.json")).get("model.layers.0.self_attn.k_proj.bias"));
    }

    @Test
    void qwen3MoeHasPerHeadQkNormAndAnExplicitHeadDim() {
        ModelSpec s = load("qwen3-30b-a3b.config.json");
        assertEquals(QkNorm.PER_HEAD, s.qkNorm());
        assertEquals(128, s.headDim());
        Map<String, Shape> shapes = shapes(s);
        assertEquals(Shape.of(4096, 2048), shapes.get("model.layers.0.self_attn.q_proj.weight"));
        assertEquals(Shape.of(2048, 4096), shapes.get("model.layers.0.self_attn.o_proj.weight"));
        assertEquals(Shape.of(512, 2048), shapes.get("model.layers.0.self_attn.k_proj.weight"));
        assertEquals(Shape.of(128), shapes.get("model.layers.0.self_attn.q_norm.weight"));
        assertEquals(Shape.of(128), shapes.get("model.layers.47.self_attn.k_norm.weight"));
        assertThat(s.qkvBias()).isFalse();
        assertThat(s.moe().renormalize()).isTrue();
        assertThat(s.moe().hasSharedExpert()).isFalse();
        assertThat(s.moe().experts()).isEqualTo(128);
        assertThat(s.moe().topK()).isEqualTo(8);
        assertThat(s.moeLayers()).hasSize(48);
    }

    @Test
    void olmoeNormalisesTheWholeProjection() {
        ModelSpec s = load("olmoe-1b-7b-0924.config.json");
        assertEquals(QkNorm.WHOLE, s.qkNorm());
        Map<String, Shape> shapes = shapes(s);
        assertEquals(Shape.of(2048), shapes.get("model.layers.3.self_attn.q_norm.weight"));
        assertEquals(Shape.of(2048), shapes.get("model.layers.3.self_attn.k_norm.weight"));
        assertEquals(Shape.of(1024, 2048), shapes.get("model.layers.3.mlp.experts.63.gate_proj.weight"));
        assertEquals(1e-5, s.rmsNormEps(), "absent in the config: the OlmoeConfig default");
        assertThat(s.moe().renormalize()).isFalse();
        assertThat(s.moe().topK()).isEqualTo(8);
    }

    @Test
    void mixtralUsesW1W3W2AndAlwaysRenormalises() {
        ModelSpec s = load("mixtral-8x7b.config.json");
        LayerNames l = s.layer(31);
        assertEquals("model.layers.31.block_sparse_moe.gate.weight", l.moe().router());
        assertEquals("model.layers.31.block_sparse_moe.experts.7.w1.weight", l.moe().experts().get(7).gate());
        assertEquals("model.layers.31.block_sparse_moe.experts.7.w3.weight", l.moe().experts().get(7).up());
        assertEquals("model.layers.31.block_sparse_moe.experts.7.w2.weight", l.moe().experts().get(7).down());
        assertThat(s.moe().renormalize()).isTrue();
        assertEquals(1e6, s.ropeTheta());
        assertEquals(8, s.numKvHeads());
        assertEquals(DType.BF16, s.dtype());
    }

    @Test
    void llavaTakesItsTextSizesFromLlamaDefaults() {
        ModelSpec s = load("llava-1.5-7b-hf.config.json");
        assertEquals(Family.LLAVA, s.family());
        assertEquals(4096, s.hiddenSize());
        assertEquals(32, s.numLayers());
        assertEquals(32, s.numHeads());
        assertEquals(32, s.numKvHeads());
        assertEquals(11008, s.intermediateSize());
        assertEquals(32064, s.vocabSize());
        assertEquals(1e-5, s.rmsNormEps());
        assertEquals(10000.0, s.ropeTheta());
        assertEquals(DType.F16, s.dtype());
        assertEquals(32000, s.imageTokenId());
        assertEquals("language_model.model.", s.decoderPrefix());
        assertEquals("language_model.model.embed_tokens.weight", s.embedTokens());
        assertEquals("language_model.lm_head.weight", s.lmHead());
        assertEquals("language_model.model.layers.7.mlp.down_proj.weight", s.layer(7).dense().down());
        Map<String, Shape> shapes = shapes(s);
        assertEquals(Shape.of(32064, 4096), shapes.get("language_model.lm_head.weight"));
        assertEquals(Shape.of(4096, 1024), shapes.get("multi_modal_projector.linear_1.weight"));
        assertEquals(Shape.of(577, 1024), shapes.get("vision_tower.vision_model.embeddings.position_embedding.weight"));
        assertThat(s.isMoeModel()).isFalse();
    }

    @Test
    void llamaAndQwen2VlBasics() {
        ModelSpec llama = load("llama-2-7b-hf.config.json");
        assertEquals(DType.F16, llama.dtype());
        assertEquals(1e-5, llama.rmsNormEps());
        assertThat(llama.qkvBias()).isFalse();
        assertEquals("lm_head.weight", llama.lmHead());
        ModelSpec vl = load("qwen2-vl-7b-instruct.config.json");
        assertThat(vl.qkvBias()).isTrue();
        assertEquals(151655, vl.imageTokenId());
        assertEquals(1e6, vl.ropeTheta());
        assertEquals(4, vl.numKvHeads());
        assertEquals(Shape.of(3584, 5120), shapes(vl).get("visual.merger.mlp.2.weight"));
    }

    // ---------------------------------------------------------------- defaults and newer config layouts

    @Test
    void absentFieldsTakeTheTransformersClassDefaults() {
        ModelSpec llama = ModelSpecs.fromConfig(json("{\"model_type\":\"llama\"}"), "llama");
        assertEquals(List.of(32000, 4096, 32, 32, 32, 11008), List.of(llama.vocabSize(), llama.hiddenSize(), llama.numLayers(),
                llama.numHeads(), llama.numKvHeads(), llama.intermediateSize()));
        assertEquals(1e-6, llama.rmsNormEps());
        assertEquals(DType.BF16, llama.dtype());

        ModelSpec mixtral = ModelSpecs.fromConfig(json("{\"model_type\":\"mixtral\"}"), "mixtral");
        assertEquals(46_702_792_704L, mixtral.parameterCount(), "MixtralConfig() is Mixtral-8x7B");

        ModelSpec qwen2 = ModelSpecs.fromConfig(json("{\"model_type\":\"qwen2_moe\"}"), "qwen2_moe");
        assertEquals(14_315_784_192L, qwen2.parameterCount(), "Qwen2MoeConfig() is Qwen1.5-MoE-A2.7B");

        ModelSpec olmoe = ModelSpecs.fromConfig(json("{\"model_type\":\"olmoe\"}"), "olmoe");
        assertEquals(2048, olmoe.moe().expertIntermediate(), "OlmoeConfig intermediate_size 2048");
        assertEquals(16, olmoe.numKvHeads());
        assertEquals(1e-5, olmoe.rmsNormEps());

        ModelSpec qwen3 = ModelSpecs.fromConfig(json("{\"model_type\":\"qwen3_moe\"}"), "qwen3_moe");
        assertEquals(64, qwen3.headDim(), "no head_dim: hidden / heads");
        assertEquals(4, qwen3.numKvHeads());
        assertEquals(24, qwen3.numLayers());
        assertThat(qwen3.moe().renormalize()).isFalse();

        ModelSpec deepseek = ModelSpecs.fromConfig(json("{\"model_type\":\"deepseek\"}"), "deepseek");
        assertNull(deepseek.moe(), "DeepseekConfig() has n_routed_experts None: a dense model");
        assertEquals(30, deepseek.numLayers());

        ModelSpec vl = ModelSpecs.fromConfig(json("{\"model_type\":\"qwen2_vl\"}"), "qwen2_vl");
        assertEquals(8192, vl.hiddenSize());
        assertEquals(80, vl.numLayers());
        assertEquals(Shape.of(3584, 5120), shapes(vl).get("visual.merger.mlp.2.weight"), "Qwen2VLVisionConfig.hidden_size");
    }

    @Test
    void qwen2VlWithANestedTextConfigMatchesTheFlatLayout() throws IOException {
        ObjectNode flat = (ObjectNode) JSON.readTree(Files.readString(fixtureDir().resolve("qwen2-vl-7b-instruct.config.json")));
        ObjectNode nested = JSON.createObjectNode();
        ObjectNode text = nested.putObject("text_config");
        for (String k : List.of("hidden_size", "intermediate_size", "num_attention_heads", "num_hidden_layers",
                "num_key_value_heads", "rms_norm_eps", "rope_theta", "vocab_size", "rope_scaling")) {
            text.set(k, flat.get(k));
        }
        nested.put("model_type", "qwen2_vl");
        nested.put("torch_dtype", "bfloat16");
        nested.set("vision_config", flat.get("vision_config"));
        nested.put("image_token_id", 151655);
        ModelSpec a = ModelSpecs.fromConfig(flat, "flat");
        ModelSpec b = ModelSpecs.fromConfig(nested, "nested");
        assertEquals(a.parameterCount(), b.parameterCount());
        assertEquals(a.expectedTensors(), b.expectedTensors());
        assertEquals(a.ropeTheta(), b.ropeTheta());
    }

    @Test
    void storageDtypeComesFromTheTopLevelThenTheTextConfig() {
        ModelSpec top = ModelSpecs.fromConfig(json("{\"model_type\":\"llava\",\"torch_dtype\":\"float16\",\"text_config\":{}}"), "t");
        assertEquals(DType.F16, top.dtype());
        ModelSpec inner = ModelSpecs.fromConfig(json("{\"model_type\":\"llava\",\"text_config\":{\"torch_dtype\":\"float32\"}}"), "i");
        assertEquals(DType.F32, inner.dtype());
        ModelSpec v5 = ModelSpecs.fromConfig(json("{\"model_type\":\"llama\",\"dtype\":\"float16\"}"), "v5");
        assertEquals(DType.F16, v5.dtype());
    }

    @Test
    void qwen2MoeDenseLayersFollowSparseStepAndMlpOnlyLayers() {
        ModelSpec s = ModelSpecs.fromConfig(json("{\"model_type\":\"qwen2_moe\",\"num_hidden_layers\":6,"
                + "\"decoder_sparse_step\":2,\"mlp_only_layers\":[3],\"intermediate_size\":640}"), "sparse");
        assertThat(s.moeLayers()).containsExactly(1, 5);
        assertEquals(Shape.of(640, 2048), shapes(s).get("model.layers.3.mlp.gate_proj.weight"));
        assertEquals(Shape.of(640, 2048), shapes(s).get("model.layers.0.mlp.up_proj.weight"));
        assertThat(shapes(s)).containsKey("model.layers.5.mlp.experts.59.down_proj.weight");
    }

    // ---------------------------------------------------------------- errors

    @Test
    void unsupportedModelTypeListsEverySupportedType() {
        assertThatThrownBy(() -> ModelSpecs.fromConfig(json("{\"model_type\":\"gpt2\"}"), "cfg.json"))
                .isInstanceOf(ModelConfigException.class)
                .hasMessage("unsupported model_type 'gpt2'; supported: llama, mixtral, qwen2_moe, qwen3_moe, olmoe, deepseek, "
                        + "llava, qwen2_vl");
        assertThatThrownBy(() -> ModelSpecs.fromConfig(json("{\"hidden_size\":8}"), "cfg.json"))
                .isInstanceOf(ModelConfigException.class).hasMessageContaining("cfg.json: config has no model_type")
                .hasMessageContaining("llama, mixtral, qwen2_moe, qwen3_moe, olmoe, deepseek, llava, qwen2_vl");
    }

    @Test
    void invalidFieldsAreNamed() throws IOException {
        assertThatThrownBy(() -> ModelSpecs.fromConfig(json("{\"model_type\":\"llama\",\"hidden_size\":\"big\"}"), "c"))
                .hasMessageContaining("c: field 'hidden_size' must be an integer");
        assertThatThrownBy(() -> ModelSpecs.fromConfig(json("{\"model_type\":\"llama\",\"vocab_size\":5000000000}"), "c"))
                .hasMessageContaining("field 'vocab_size' must be an integer (32-bit)");
        assertThatThrownBy(() -> ModelSpecs.fromConfig(json("{\"model_type\":\"llama\",\"num_attention_heads\":0}"), "c"))
                .hasMessageContaining("field 'num_attention_heads' must be positive");
        assertThatThrownBy(() -> ModelSpecs.fromConfig(json("{\"model_type\":\"llama\",\"num_key_value_heads\":5}"), "c"))
                .hasMessageContaining("not a multiple of num_key_value_heads 5");
        assertThatThrownBy(() -> ModelSpecs.fromConfig(json("{\"model_type\":\"llama\",\"hidden_act\":\"gelu\"}"), "c"))
                .hasMessageContaining("hidden_act 'gelu' is not supported");
        assertThatThrownBy(() -> ModelSpecs.fromConfig(json("{\"model_type\":\"llama\",\"rope_scaling\":{\"type\":\"linear\",\"factor\":2}}"), "c"))
                .hasMessageContaining("rope_scaling").hasMessageContaining("not supported");
        assertThatThrownBy(() -> ModelSpecs.fromConfig(json("{\"model_type\":\"llama\",\"rope_parameters\":{\"rope_type\":\"yarn\",\"rope_theta\":1e6}}"), "c"))
                .hasMessageContaining("not supported");
        assertEquals(5e5, ModelSpecs.fromConfig(json("{\"model_type\":\"llama\",\"rope_parameters\":{\"rope_type\":\"default\",\"rope_theta\":5e5}}"), "c").ropeTheta());
        assertThatThrownBy(() -> ModelSpecs.fromConfig(json("{\"model_type\":\"mixtral\",\"num_experts_per_tok\":9}"), "c"))
                .hasMessageContaining("num_experts_per_tok 9 exceeds the 8 experts");
        assertThatThrownBy(() -> ModelSpecs.fromConfig(json("{\"model_type\":\"deepseek\",\"n_routed_experts\":8}"), "c"))
                .hasMessageContaining("num_experts_per_tok is required");
        Path bad = Files.writeString(tmp.resolve("config.json"), "{\"model_type\": ");
        assertThatThrownBy(() -> ModelSpecs.load(tmp)).isInstanceOf(ModelConfigException.class)
                .hasMessageContaining(bad.toString()).hasMessageContaining("invalid JSON");
        assertThatThrownBy(() -> ModelSpecs.load(tmp.resolve("nowhere"))).isInstanceOf(ModelConfigException.class)
                .hasMessageContaining("no config.json");
    }

    // ---------------------------------------------------------------- validate against a checkpoint

    @Test
    void validateNamesMissingAndMisshapenTensors() {
        ModelSpec spec = ModelSpecs.fromConfig(json("{\"model_type\":\"qwen3_moe\",\"vocab_size\":32,\"hidden_size\":16,"
                + "\"num_hidden_layers\":2,\"num_attention_heads\":4,\"num_key_value_heads\":2,\"head_dim\":8,"
                + "\"num_experts\":4,\"num_experts_per_tok\":2,\"moe_intermediate_size\":12}"), "tiny");
        List<TensorShape> expected = spec.expectedTensors();
        assertThat(expected).extracting(TensorShape::name).contains("model.layers.1.self_attn.q_norm.weight",
                "model.layers.1.mlp.experts.3.down_proj.weight");
        Path good = tmp.resolve("good");
        writeCheckpoint(good, expected, Map.of());
        try (Checkpoint c = Checkpoint.open(good)) {
            assertThat(spec.validate(c)).isEmpty();
            spec.requireValid(c);
        }
        String missing = "model.layers.1.mlp.experts.2.up_proj.weight";
        String misshapen = "model.layers.0.self_attn.q_proj.weight";
        Path bad = tmp.resolve("bad");
        writeCheckpoint(bad, expected.stream().filter(t -> !t.name().equals(missing)).toList(), Map.of(misshapen, Shape.of(16, 32)));
        try (Checkpoint c = Checkpoint.open(bad)) {
            assertThat(spec.validate(c)).containsExactly(
                    "tensor '" + misshapen + "' has shape [16, 32], expected [32, 16]",
                    "missing tensor '" + missing + "' (expected shape [12, 16])");
            assertThatThrownBy(() -> spec.requireValid(c)).isInstanceOf(ModelConfigException.class)
                    .hasMessageContaining("checkpoint does not match its qwen3_moe config (2 problem(s))")
                    .hasMessageContaining(missing).hasMessageContaining(misshapen);
        }
    }

    private static void writeCheckpoint(Path dir, List<TensorShape> tensors, Map<String, Shape> override) {
        try (CheckpointWriter w = CheckpointWriter.create(dir, 4096)) {
            List<TensorSource> group = new ArrayList<>();
            for (TensorShape t : tensors) {
                Shape shape = override.getOrDefault(t.name(), t.shape());
                group.add(TensorSource.ofBytes(t.name(), DType.BF16, shape, new byte[Math.toIntExact(2 * shape.numel())]));
            }
            w.writeTensors(group);
            w.commit();
        }
    }

    // ---------------------------------------------------------------- helpers

    private static Map<String, Shape> shapes(ModelSpec s) {
        Map<String, Shape> out = new LinkedHashMap<>();
        s.expectedTensors().forEach(t -> out.put(t.name(), t.shape()));
        return out;
    }

    private static ModelSpec load(String fixture) {
        return ModelSpecs.load(fixtureDir().resolve(fixture));
    }

    private static JsonNode json(String text) {
        return JSON.readTree(text);
    }

    private static Path fixtureDir() {
        try {
            return Path.of(ModelSpecTest.class.getResource("/hf-configs/tensor-names.md").toURI()).getParent();
        } catch (URISyntaxException e) {
            throw new UncheckedIOException(new IOException(e));
        }
    }
}
