package io.whittle.forward;

import static org.assertj.core.api.Assertions.assertThat;

import io.whittle.compute.cpu.CpuBackend;
import io.whittle.model.ModelSpec;
import io.whittle.model.ModelSpec.TensorShape;
import io.whittle.model.ModelSpecs;
import io.whittle.tensor.DType;
import io.whittle.tensor.FloatTensor;
import io.whittle.tensor.Shape;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import tools.jackson.databind.json.JsonMapper;
import tools.jackson.databind.node.ObjectNode;

/** Properties of the decoder layer that must hold whatever the weights: causality, MoE/dense equivalences. */
class DecoderLayerPropertiesTest {

    private final CpuBackend cpu = new CpuBackend();
    private final List<FloatTensor> toClose = new ArrayList<>();

    @AfterEach
    void close() {
        toClose.forEach(FloatTensor::close);
        cpu.close();
    }

    static ModelSpec spec(String modelType, Map<String, Object> extra) {
        ObjectNode c = JsonMapper.builder().build().createObjectNode();
        c.put("model_type", modelType);
        c.put("vocab_size", 50);
        c.put("hidden_size", 32);
        c.put("intermediate_size", 48);
        c.put("num_hidden_layers", 1);
        c.put("num_attention_heads", 4);
        c.put("num_key_value_heads", 2);
        c.put("rms_norm_eps", 1e-5);
        c.put("rope_theta", 10000.0); // the families' defaults differ (Mixtral 1e6); equal here so layers compare
        extra.forEach((k, v) -> c.set(k, JsonMapper.builder().build().valueToTree(v)));
        return ModelSpecs.fromConfig(c, "test");
    }

    private LayerWeights randomWeights(ModelSpec spec, long seed) {
        Random r = new Random(seed);
        Map<String, FloatTensor> map = new LinkedHashMap<>();
        for (TensorShape t : spec.expectedTensors()) {
            if (!t.name().startsWith(spec.decoderPrefix() + "layers.0.")) {
                continue;
            }
            FloatTensor x = FloatTensor.zeros(t.shape());
            boolean norm = t.name().endsWith("norm.weight") || t.name().endsWith("layernorm.weight");
            double std = norm ? 0.1 : 1.0 / Math.sqrt(t.shape().cols());
            for (long i = 0; i < x.numel(); i++) {
                x.set(i, (float) ((norm ? 1.0 : 0.0) + std * r.nextGaussian()));
            }
            map.put(t.name(), x);
        }
        return LayerWeights.of(0, map, DType.F32);
    }

    private FloatTensor randomHidden(int rows, int hidden, long seed) {
        Random r = new Random(seed);
        FloatTensor h = FloatTensor.zeros(rows, hidden);
        toClose.add(h);
        for (long i = 0; i < h.numel(); i++) {
            h.set(i, (float) r.nextGaussian());
        }
        return h;
    }

    private float[] forward(ModelSpec spec, LayerWeights w, FloatTensor hidden, TokenBatch batch) {
        try (FloatTensor out = FloatTensor.zeros(hidden.shape())) {
            new DecoderLayer(spec, 0).forward(cpu, w, hidden, out, batch, 8192, null);
            return out.toArray();
        }
    }

    private static TokenBatch batchOf(int... lengths) {
        List<int[]> seqs = new ArrayList<>();
        for (int len : lengths) {
            seqs.add(new int[len]);
        }
        return new TokenBatch(seqs);
    }

    @Test
    void changingTokenTLeavesEarlierOutputsUnchanged() {
        for (String type : List.of("llama", "mixtral", "qwen2_moe", "qwen3_moe", "olmoe")) {
            ModelSpec spec = spec(type, type.equals("llama") ? Map.of()
                    : Map.of("num_experts", 4, "num_local_experts", 4, "num_experts_per_tok", 2, "moe_intermediate_size", 16,
                    "shared_expert_intermediate_size", 24, "head_dim", 8));
            try (LayerWeights w = randomWeights(spec, 1)) {
                int len = 10, t = 6;
                FloatTensor h = randomHidden(len, 32, 2);
                float[] before = forward(spec, w, h, batchOf(len));
                for (int j = 0; j < 32; j++) {
                    h.set(t, j, h.get(t, j) + 1.0f);
                }
                float[] after = forward(spec, w, h, batchOf(len));
                // rows before t are unchanged up to rounding: with MoE, a changed token can change which rows
                // share an expert's GEMM, and BLAS rounding depends on the matrix size
                for (int i = 0; i < t * 32; i++) {
                    assertThat(after[i]).as("%s row %d", type, i / 32)
                            .isCloseTo(before[i], org.assertj.core.data.Offset.offset(1e-5f * Math.max(1f, Math.abs(before[i]))));
                }
                assertThat(after[t * 32]).isNotEqualTo(before[t * 32]);
            }
        }
    }

    @Test
    void sequencesInOneBatchDoNotSeeEachOther() {
        ModelSpec spec = spec("llama", Map.of());
        try (LayerWeights w = randomWeights(spec, 3)) {
            FloatTensor both = randomHidden(12, 32, 4);
            float[] packed = forward(spec, w, both, batchOf(5, 7));
            try (FloatTensor second = both.rowSlice(5, 7).copy()) {
                float[] alone = forward(spec, w, second, batchOf(7));
                for (int i = 0; i < 7 * 32; i++) {
                    assertThat(packed[5 * 32 + i]).isCloseTo(alone[i], org.assertj.core.data.Offset.offset(1e-5f));
                }
            }
        }
    }

    /** A Mixtral (or OLMoE) layer with one expert and top-1 routing is the dense Llama layer with that MLP. */
    @Test
    void oneExpertTopOneMoeEqualsDenseMlp() {
        ModelSpec dense = spec("llama", Map.of());
        for (String type : List.of("mixtral", "olmoe")) {
            ModelSpec moe = spec(type, Map.of("num_local_experts", 1, "num_experts", 1, "num_experts_per_tok", 1));
            try (LayerWeights dw = randomWeights(dense, 5)) {
                Map<String, FloatTensor> map = new LinkedHashMap<>();
                var n = moe.layer(0);
                var d = dense.layer(0);
                map.put(n.inputNorm(), dw.get(d.inputNorm()).copy());
                map.put(n.postNorm(), dw.get(d.postNorm()).copy());
                map.put(n.q(), dw.get(d.q()).copy());
                map.put(n.k(), dw.get(d.k()).copy());
                map.put(n.v(), dw.get(d.v()).copy());
                map.put(n.o(), dw.get(d.o()).copy());
                if (n.qNorm() != null) { // OLMoE has q/k norms: with weight 1 they still normalise, so compare against
                    continue;            // the dense layer only for families without them
                }
                FloatTensor router = FloatTensor.zeros(Shape.of(1, 32));
                router.fill(0.3f);
                map.put(n.moe().router(), router);
                var e = n.moe().experts().get(0);
                map.put(e.gate(), dw.get(d.dense().gate()).copy());
                map.put(e.up(), dw.get(d.dense().up()).copy());
                map.put(e.down(), dw.get(d.dense().down()).copy());
                try (LayerWeights mw = LayerWeights.of(0, map, DType.F32)) {
                    FloatTensor h = randomHidden(9, 32, 6);
                    float[] a = forward(dense, dw, h, batchOf(9));
                    float[] b = forward(moe, mw, h, batchOf(9));
                    assertThat(b).as(type).containsExactly(a);
                }
            }
        }
    }

    @Test
    void renormalisationRulesPerFamily() {
        assertThat(spec("mixtral", Map.of()).moe().renormalize()).isTrue();
        assertThat(spec("mixtral", Map.of("norm_topk_prob", false)).moe().renormalize()).as("Mixtral always renormalises").isTrue();
        assertThat(spec("qwen2_moe", Map.of()).moe().renormalize()).isFalse();
        assertThat(spec("qwen2_moe", Map.of("norm_topk_prob", true)).moe().renormalize()).isTrue();
        assertThat(spec("qwen3_moe", Map.of()).moe().renormalize()).as("Qwen3MoeConfig default is false").isFalse();
        assertThat(spec("qwen3_moe", Map.of("norm_topk_prob", true)).moe().renormalize()).isTrue();
        assertThat(spec("olmoe", Map.of()).moe().renormalize()).isFalse();
        Map<String, Object> ds = Map.of("n_routed_experts", 4, "num_experts_per_tok", 2, "moe_intermediate_size", 16);
        assertThat(spec("deepseek", ds).moe().renormalize()).isFalse();
        Map<String, Object> dsNorm = new LinkedHashMap<>(ds);
        dsNorm.put("norm_topk_prob", true);
        ModelSpec renorm = spec("deepseek", dsNorm);
        assertThat(renorm.moe().renormalize()).isTrue();
        assertThat(renorm.moe().renormEpsilon()).isEqualTo(1e-20);
        Map<String, Object> dsTop1 = new LinkedHashMap<>(dsNorm);
        dsTop1.put("num_experts_per_tok", 1);
        assertThat(spec("deepseek", dsTop1).moe().renormalize()).as("DeepSeek renormalises only for top_k > 1").isFalse();
    }

    @Test
    void qwen2SharedExpertIsGatedAndDeepseekIsNot() {
        ModelSpec qwen = spec("qwen2_moe", Map.of("num_experts", 4, "num_experts_per_tok", 2, "moe_intermediate_size", 16,
                "shared_expert_intermediate_size", 24));
        try (LayerWeights w = randomWeights(qwen, 8)) {
            FloatTensor h = randomHidden(6, 32, 9);
            float[] base = forward(qwen, w, h, batchOf(6));
            // a very negative shared gate switches the shared expert off: the output must change accordingly
            FloatTensor gate = w.get(qwen.layer(0).moe().sharedGate());
            gate.fill(0f);
            float[] half = forward(qwen, w, h, batchOf(6)); // sigmoid(0) = 0.5
            for (int j = 0; j < 32; j++) {
                gate.set(j, j == 0 ? -1e4f : 0f);
            }
            assertThat(half).isNotEqualTo(base);
            var down = w.get(qwen.layer(0).moe().shared().down());
            down.fill(0f); // with a zero shared down projection the gate no longer matters
            float[] z1 = forward(qwen, w, h, batchOf(6));
            gate.fill(0f);
            float[] z2 = forward(qwen, w, h, batchOf(6));
            assertThat(z1).containsExactly(z2);
        }
    }
}
