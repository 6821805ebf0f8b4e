package io.whittle.cli;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.file.Path;
import java.nio.file.Paths;
import org.junit.jupiter.api.Test;
import tools.jackson.databind.JsonNode;

/** The visual-flops and visual-bench commands: JSON fields, the paper's FLOPs figures, and one-line errors. */
class VisualCliTest {


    static CliRun run(String... args) {
        return CliRun.of(args);
    }

    static Path resource(String name) throws Exception {
        return Paths.get(VisualCliTest.class.getResource(name).toURI());
    }

    @Test
    void visualFlopsPrintsThePapersDenseFiguresAndThePrunedCount() throws Exception {
        CliRun r7 = run("visual-flops", "--config", resource("/hf-configs/llava-1.5-7b-hf.config.json").toString());
        assertThat(r7.code()).as(r7.err()).isZero();
        assertThat(r7.json().get("dense").asDouble()).isEqualTo(7.63430436864e12);
        assertThat(r7.json().get("dense_tflops").stringValue()).isEqualTo("7.63");
        assertThat(r7.json().get("params").get("drop_layer").asInt()).isEqualTo(16);
        CliRun r13 = run("visual-flops", "--config", resource("/vision/llava-1.5-13b-hf.config.json").toString(),
                "--param", "heads_kept=20", "--param", "drop_layer=20", "--param", "ffn_visual_fraction=0.5");
        assertThat(r13.code()).as(r13.err()).isZero();
        JsonNode j = r13.json();
        assertThat(j.get("dense").asDouble()).isEqualTo(1.48881014784e13);
        assertThat(j.get("dense_tflops").stringValue()).isEqualTo("14.89");
        double expected = 20 * (576 * (8.0 * 5120 * 5120 * 0.5 + 6.0 * 5120 * 13824 * 0.5) + 4.0 * 12996 * 128 * 20);
        assertThat(j.get("pruned").asDouble()).isCloseTo(expected, org.assertj.core.data.Offset.offset(1.0));
        assertThat(j.get("pruned_fraction").asDouble()).isLessThan(0.3);
    }

    @Test
    void visualFlopsErrorsAreOneLine() throws Exception {
        Path cfg = resource("/hf-configs/llava-1.5-7b-hf.config.json");
        CliRun even = run("visual-flops", "--config", cfg.toString(), "--param", "window=6");
        assertThat(even.code()).isEqualTo(2);
        assertThat(even.err().strip()).isEqualTo("error: window must be an odd number >= 1 (a w x w neighbourhood centred on the token), got 6");
        CliRun unknown = run("visual-flops", "--config", cfg.toString(), "--param", "alpha=0.1");
        assertThat(unknown.err()).contains("unknown parameter 'alpha' for visual-flops");
        CliRun notLlava = run("visual-flops", "--config", resource("/hf-configs/llama-2-7b-hf.config.json").toString());
        assertThat(notLlava.code()).isEqualTo(2);
        assertThat(notLlava.err()).contains("visual-flops needs a llava config, got model_type 'llama'");
    }

    @Test
    void visualBenchRunsDenseAndPrunedPrefill() {
        CliRun r = run("visual-bench", "--layers", "2", "--hidden", "32", "--heads", "2", "--intermediate", "48", "--vocab", "64",
                "--prefix", "3", "--text", "4", "--samples", "1", "--backend", "cpu");
        assertThat(r.code()).as(r.err()).isZero();
        JsonNode j = r.json();
        assertThat(j.get("model").get("visual_tokens").asInt()).isEqualTo(576);
        assertThat(j.get("prefill").get("dense_seconds").asDouble()).isGreaterThan(0);
        assertThat(j.get("prefill").get("speedup").asDouble()).isGreaterThan(0);
        assertThat(j.get("visual_flops").get("pruned").asDouble()).isLessThan(j.get("visual_flops").get("dense").asDouble());
        assertThat(j.get("fidelity").get("positions").asInt()).isEqualTo(4);
    }

    @Test
    void methodsListsVisualPrune() {
        CliRun r = run("methods");
        assertThat(r.code()).as(r.err()).isZero();
        assertThat(r.out()).contains("visual-prune").contains("heads_kept").contains("drop_layer");
    }
}
