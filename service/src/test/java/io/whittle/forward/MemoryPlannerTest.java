package io.whittle.forward;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.whittle.model.ModelSpec;
import io.whittle.model.ModelSpecs;
import java.io.InputStream;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import tools.jackson.databind.json.JsonMapper;

/** The device memory plan on real model shapes: what fits, how groups shrink, and the failure with numbers. */
class MemoryPlannerTest {

    private static final long GIB = 1L << 30;

    private static ModelSpec shape(String name) throws Exception {
        try (InputStream in = MemoryPlannerTest.class.getResourceAsStream("/shapes/" + name + ".json")) {
            return ModelSpecs.fromConfig(JsonMapper.builder().build().readTree(in), name);
        }
    }

    private static TokenBatch batch(int sequences, int length) {
        List<int[]> seqs = new ArrayList<>();
        for (int s = 0; s < sequences; s++) {
            seqs.add(new int[length]);
        }
        return new TokenBatch(seqs);
    }

    @Test
    void largestLayerIsTheMoeLayerInFp32() throws Exception {
        ModelSpec spec = shape("qwen2-57b-a14b");
        ModelSpec.Moe moe = spec.moe();
        long h = spec.hiddenSize();
        long experts = 3L * moe.experts() * moe.expertIntermediate() * h;
        long shared = 3L * moe.sharedIntermediate() * h;
        long bytes = MemoryPlanner.largestLayerBytes(spec);
        // experts and shared expert dominate; attention, router and norms add a few percent
        assertThat(bytes).isGreaterThan(4 * (experts + shared)).isLessThan((long) (4 * (experts + shared) * 1.2));
    }

    @Test
    void camerasCalibrationFitsOnALargeGpuWithFullGroups() throws Exception {
        ModelSpec spec = shape("qwen2-57b-a14b");
        MemoryPlanner.Plan plan = MemoryPlanner.plan(spec, batch(128, 2048), 4096, 139 * GIB, "cuda:0");
        assertThat(plan.groupTokens()).isEqualTo(4096);
        assertThat(plan.hiddenBytes()).isEqualTo(2L * 4 * 128 * 2048 * spec.hiddenSize());
        assertThat(plan.peakBytes()).isLessThanOrEqualTo((long) (139 * GIB * MemoryPlanner.USABLE_FRACTION));
        assertThat(plan.describe()).contains("group of 4096 tokens").contains("GiB available");
    }

    @Test
    void lessMemoryShrinksGroupsDownToTheLongestSequence() throws Exception {
        ModelSpec spec = shape("qwen2-57b-a14b");
        TokenBatch b = batch(64, 512);
        MemoryPlanner.Plan roomy = MemoryPlanner.plan(spec, b, 4096, 80 * GIB, "cuda:0");
        long tight = roomy.hiddenBytes() + roomy.layerWeightBytes() + MemoryPlanner.activationBytes(spec, 1024);
        MemoryPlanner.Plan smaller = MemoryPlanner.plan(spec, b, 4096, (long) (tight / MemoryPlanner.USABLE_FRACTION) + 1, "cuda:0");
        assertThat(roomy.groupTokens()).isEqualTo(4096);
        assertThat(smaller.groupTokens()).isEqualTo(1024);
        assertThat(smaller.peakBytes()).isLessThanOrEqualTo((long) (smaller.availableBytes() * MemoryPlanner.USABLE_FRACTION));
    }

    @Test
    void aJobThatCannotFitOneLayerFailsWithTheNumbers() throws Exception {
        ModelSpec spec = shape("qwen2-57b-a14b");
        assertThatThrownBy(() -> MemoryPlanner.plan(spec, batch(128, 2048), 4096, 16 * GIB, "cuda:0"))
                .isInstanceOf(IllegalStateException.class)
                .hasMessageStartingWith("cuda:0 - 262144 calibration tokens of qwen2_moe do not fit: hidden states 7.00 GiB + largest layer's "
                        + "weights ")
                .hasMessageContaining("activations for 2048 tokens")
                .hasMessageContaining("14.40 GiB of 16.00 GiB available may be used (90%)")
                .hasMessageContaining("Use fewer or shorter calibration sequences");
    }

    @Test
    void activationsFollowTheDecoderLayersLargestBlock() throws Exception {
        ModelSpec dense = shape("llama-2-7b-hf");
        long h = dense.hiddenSize();
        // llama: the MLP block (x, y, gate, up) outweighs the attention block (x, q, k, v, out)
        assertThat(MemoryPlanner.activationBytes(dense, 100)).isEqualTo(4L * 100 * (2 * h + 2L * dense.intermediateSize()));
    }
}
