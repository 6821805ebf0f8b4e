package io.whittle.forward;

import static org.assertj.core.api.Assertions.assertThat;

import io.whittle.compute.cpu.CpuBackend;
import io.whittle.model.ModelSpec;
import io.whittle.model.ModelSpecs;
import io.whittle.tensor.HostAllocator;
import org.junit.jupiter.api.Test;
import tools.jackson.databind.json.JsonMapper;

/** The bench command's arithmetic and a run on a tiny MoE shape (no timing assertions). */
class ForwardBenchmarkTest {

    static ModelSpec tinyMoe() {
        return ModelSpecs.fromConfig(JsonMapper.builder().build().readTree("""
                {"model_type": "qwen2_moe", "vocab_size": 50, "hidden_size": 32, "intermediate_size": 64,
                 "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "num_experts": 4,
                 "num_experts_per_tok": 2, "moe_intermediate_size": 16, "shared_expert_intermediate_size": 24}"""), "tiny");
    }

    @Test
    void flopsPerTokenCountsProjectionsCausalAttentionAndActiveExperts() {
        ModelSpec spec = tinyMoe();
        int h = 32, q = 32, kv = 16, seq = 10;
        double attention = 2.0 * (h * q + 2 * h * kv + q * h) + 2.0 * 4 * 8 * (seq + 1);
        double moe = 2.0 * h * 4 + 2 * 2 * 3.0 * h * 16 + 2 * 3.0 * h * 24;
        assertThat(ForwardBenchmark.flopsPerToken(spec, 0, seq)).isEqualTo(attention + moe);
    }

    @Test
    void runReportsConsistentFiguresAgainstTheGemmRateOfTheSameRun() {
        try (HostAllocator alloc = HostAllocator.root().newChild("bench-test", Long.MAX_VALUE);
             CpuBackend cpu = new CpuBackend(alloc)) {
            ForwardBenchmark.Result r = ForwardBenchmark.run("tiny", tinyMoe(), 1, cpu, 2, 16, 1, alloc);
            assertThat(r.moeLayer()).isTrue();
            assertThat(r.medianSeconds()).isPositive();
            assertThat(r.tokensPerSecond()).isCloseTo(32 / r.medianSeconds(), org.assertj.core.data.Percentage.withPercentage(1e-9));
            assertThat(r.modelGflops()).isCloseTo(r.flopsPerToken() * 32 / r.medianSeconds() / 1e9,
                    org.assertj.core.data.Percentage.withPercentage(1e-9));
            assertThat(r.gemmGflops()).isPositive();
            assertThat(r.efficiency()).isCloseTo(r.modelGflops() / r.gemmGflops(), org.assertj.core.data.Percentage.withPercentage(1e-9));
            assertThat(r.peakHostBytes()).isPositive();
        }
    }
}
