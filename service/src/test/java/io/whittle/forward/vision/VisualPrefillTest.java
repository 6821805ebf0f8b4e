package io.whittle.forward.vision;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.whittle.compute.cpu.CpuBackend;
import io.whittle.forward.LayerWeights;
import io.whittle.forward.vision.VisualPrefill.KeptHeads;
import io.whittle.forward.vision.VisualPrefill.State;
import io.whittle.forward.vision.VisualPrefill.VisualExecution;
import io.whittle.model.Checkpoint;
import io.whittle.model.ModelSpec;
import io.whittle.model.ModelSpec.Family;
import io.whittle.model.SyntheticModels;
import io.whittle.tensor.DType;
import io.whittle.tensor.FloatTensor;
import io.whittle.tensor.HostAllocator;
import io.whittle.tensor.Shape;
import java.nio.file.Path;
import java.util.Random;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The pruned prefill on a synthetic LLaVA-shaped model (text hidden 64, 4 heads, 3 layers, 24x24 = 576 visual
 * tokens): efficient execution equals the dense masked computation in every configuration; efficient and the
 * released code's exact masking agree where the semantics coincide (nothing pruned but the window) and differ
 * where they must (pruned heads: no renormalisation); with one visual token and nothing pruned every mode is the
 * engine's dense Llama layer. Relative errors against the reference below 1e-4 (fp32, different summation order).
 */
class VisualPrefillTest {

    @TempDir
    static Path dir;
    static ModelSpec spec;
    static Checkpoint checkpoint;
    static final CpuBackend CPU = new CpuBackend();
    static final int IMAGE = 127;

    @BeforeAll
    static void model() {
        SyntheticModels.Request r = new SyntheticModels.Request(Family.LLAVA, 3, 64, 96, 0, 0, 0, 0, 4, 4, 128, 21, DType.F32, 1);
        spec = SyntheticModels.write(r, dir.resolve("llava"));
        checkpoint = Checkpoint.open(dir.resolve("llava"));
        assertThat(spec.imageTokenId()).isEqualTo(IMAGE);
    }

    @AfterAll
    static void close() {
        checkpoint.close();
    }

    static MultimodalSequence sequence(int grid, long seed) {
        Random random = new Random(seed);
        int[] prompt = new int[5 + 1 + 9];
        for (int i = 0; i < prompt.length; i++) {
            prompt[i] = 1 + random.nextInt(IMAGE - 1);
        }
        prompt[5] = IMAGE;
        int[] answer = {3, 9, 27};
        return MultimodalSequence.expand(prompt, answer, IMAGE, grid, grid, "test");
    }

    static FloatTensor embeds(int rows, long seed) {
        Random random = new Random(seed);
        float[] v = new float[rows * 64];
        for (int i = 0; i < v.length; i++) {
            v[i] = (float) random.nextGaussian();
        }
        return FloatTensor.of(Shape.of(rows, 64), v);
    }

    /** Runs all layers; returns the text rows' final hidden states. */
    static float[] run(MultimodalSequence seq, FloatTensor image, VisualExecution mode, VisualPruning plan) {
        HostAllocator alloc = HostAllocator.root();
        try (State s = VisualPrefill.start(CPU, spec, checkpoint, seq, image, alloc)) {
            for (int l = 0; l < spec.numLayers(); l++) {
                try (LayerWeights w = LayerWeights.load(checkpoint, l, spec.layer(l).allTensors(), alloc)) {
                    if (mode == null) {
                        VisualPrefill.denseLayer(CPU, spec, l, w, s, null);
                    } else {
                        boolean efficientVisual = mode == VisualExecution.EFFICIENT && l < plan.dropLayer();
                        try (KeptHeads kept = efficientVisual ? VisualPrefill.keptHeads(CPU, spec, w, plan.activeHeads(l), alloc) : null) {
                            VisualPrefill.prunedLayer(CPU, spec, l, w, kept, s, mode, plan);
                        }
                    }
                }
            }
            try (FloatTensor text = s.textHidden(alloc)) {
                return text.toArray();
            }
        }
    }

    static double relDiff(float[] a, float[] b) {
        assertThat(a.length).isEqualTo(b.length);
        double num = 0, den = 0;
        for (int i = 0; i < a.length; i++) {
            num += Math.pow(a[i] - b[i], 2);
            den += (double) b[i] * b[i];
        }
        return Math.sqrt(num / den);
    }

    static VisualPruning plan(int window, int drop) {
        boolean[][] keep = {{true, true, true, true}, {true, false, true, false}, {false, false, false, true}};
        return new VisualPruning(window, drop, keep);
    }

    @Test
    void efficientEqualsDenseMaskedComputationInEveryConfiguration() {
        MultimodalSequence seq = sequence(24, 1);
        assertThat(seq.visual()).isEqualTo(576);
        try (FloatTensor image = embeds(576, 2)) {
            // window 47 covers the whole grid (bidirectional dense visual block)
            for (int[] config : new int[][] {{1, 2}, {5, 0}, {5, 2}, {5, 3}, {47, 3}}) {
                {
                    int window = config[0], drop = config[1];
                    VisualPruning p = plan(window, drop);
                    float[] efficient = run(seq, image, VisualExecution.EFFICIENT, p);
                    float[] masked = run(seq, image, VisualExecution.MASKED, p);
                    assertThat(relDiff(efficient, masked)).as("window %d drop %d", window, drop).isLessThan(1e-4);
                }
            }
        }
    }

    @Test
    void efficientAndExactAgreeWithoutPrunedHeadsAndDifferWithThem() {
        MultimodalSequence seq = sequence(24, 3);
        try (FloatTensor image = embeds(576, 4)) {
            VisualPruning windowOnly = VisualPruning.windowOnly(5, 3, 4);
            assertThat(relDiff(run(seq, image, VisualExecution.EFFICIENT, windowOnly),
                    run(seq, image, VisualExecution.EXACT, windowOnly))).isLessThan(1e-4);
            VisualPruning pruned = plan(5, 3);
            double diff = relDiff(run(seq, image, VisualExecution.EFFICIENT, pruned), run(seq, image, VisualExecution.EXACT, pruned));
            assertThat(diff).as("renormalised vs post-softmax zeroing").isGreaterThan(1e-3);
            // and the window itself changes the model (it is not a no-op): window-only pruning differs from dense
            assertThat(relDiff(run(seq, image, VisualExecution.EFFICIENT, windowOnly), run(seq, image, null, null))).isGreaterThan(1e-3);
        }
    }

    @Test
    void withOneVisualTokenAndNothingPrunedEveryModeIsTheDenseLlamaLayer() {
        MultimodalSequence seq = sequence(1, 5);
        try (FloatTensor image = embeds(1, 6)) {
            float[] dense = run(seq, image, null, null);
            VisualPruning none = VisualPruning.windowOnly(1, 3, 4);
            for (VisualExecution mode : VisualExecution.values()) {
                assertThat(relDiff(run(seq, image, mode, none), dense)).as("%s", mode).isLessThan(1e-5);
            }
        }
    }

    @Test
    void imageTokenExpansionAndItsErrors() {
        MultimodalSequence one = MultimodalSequence.expand(new int[] {1, 2, 9, 3}, new int[] {4}, 9, 2, 3, "s0");
        assertThat(one.tokens()).containsExactly(1, 2, 9, 9, 9, 9, 9, 9, 3, 4);
        assertThat(one.prefix()).isEqualTo(2);
        assertThat(one.textStart()).isEqualTo(8);
        assertThat(one.promptLength()).isEqualTo(9);
        MultimodalSequence full = MultimodalSequence.expand(new int[] {1, 9, 9, 9, 9, 9, 9, 3}, null, 9, 2, 3, "s1");
        assertThat(full.tokens()).hasSize(8);
        assertThatThrownBy(() -> MultimodalSequence.expand(new int[] {1, 2, 3}, null, 9, 24, 24, "sample 4"))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessage("sample 4: input_ids has no image token (id 9); put one where the 576 visual tokens go");
        assertThatThrownBy(() -> MultimodalSequence.expand(new int[] {9, 2, 9}, null, 9, 24, 24, "sample 5"))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("input_ids has 2 image tokens (id 9); expected one image");
    }

    @Test
    void wrongImageEmbeddingShapeIsAClearError() {
        MultimodalSequence seq = sequence(24, 7);
        try (FloatTensor wrong = FloatTensor.zeros(575, 64)) {
            assertThatThrownBy(() -> VisualPrefill.start(CPU, spec, checkpoint, seq, wrong, HostAllocator.root()))
                    .isInstanceOf(IllegalArgumentException.class)
                    .hasMessage("image embeddings must be [576, 64], got [575, 64]");
        }
    }
}
