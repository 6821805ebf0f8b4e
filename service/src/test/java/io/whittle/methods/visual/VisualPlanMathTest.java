package io.whittle.methods.visual;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.whittle.compute.VisualLayout;
import io.whittle.model.ModelSpec;
import io.whittle.model.ModelSpecs;
import java.io.InputStream;
import java.util.Random;
import org.assertj.core.data.Offset;
import org.junit.jupiter.api.Test;
import tools.jackson.databind.json.JsonMapper;

/** Window geometry, the FLOPs formula on the real LLaVA-1.5 configs, and the head vote on hand-made ratios. */
class VisualPlanMathTest {

    private static ModelSpec config(String resource) throws Exception {
        try (InputStream in = VisualPlanMathTest.class.getResourceAsStream(resource)) {
            return ModelSpecs.fromConfig(JsonMapper.builder().build().readTree(in), resource);
        }
    }

    @Test
    void windowGeometryOnTheLlavaGrid() {
        VisualLayout w5 = VisualLayout.ofWindow(35, 24, 24, 5);
        assertThat(w5.visual()).isEqualTo(576);
        assertThat(w5.windowKeys(0)).containsExactly(0, 1, 2, 24, 25, 26, 48, 49, 50); // corner: 9
        assertThat(w5.windowKeys(1)).hasSize(12);  // edge, next to the corner
        assertThat(w5.windowKeys(25)).hasSize(16);
        assertThat(w5.windowKeys(2)).hasSize(15);  // edge, two from the corner
        assertThat(w5.windowKeys(300)).hasSize(25); // interior
        assertThat(w5.windowKeys(575)).hasSize(9);
        assertThat(w5.allowedVisualPairs()).isEqualTo(12_996);
        long brute = 0;
        for (int i = 0; i < 576; i++) {
            for (int j = 0; j < 576; j++) {
                boolean a = w5.windowAllows(i, j);
                assertThat(a).isEqualTo(w5.windowAllows(j, i)); // symmetric, so bidirectional
                brute += a ? 1 : 0;
            }
            int query = i;
            assertThat(w5.windowKeys(i)).hasSize((int) java.util.stream.IntStream.range(0, 576)
                    .filter(j -> w5.windowAllows(query, j)).count());
        }
        assertThat(brute).isEqualTo(12_996).isLessThan(331_776);
        assertThat(w5.windowAllows(23, 24)).isFalse(); // sequence neighbours, not grid neighbours
        assertThat(w5.windowAllows(0, 48)).isTrue();
        assertThat(w5.windowAllows(0, 72)).isFalse();
        assertThat(w5.windowAllows(0, 24)).isTrue(); // the row below: bidirectional
        for (int[] wc : new int[][] {{1, 576}, {3, 4_900}, {7, 24_336}, {11, 54_756}}) {
            assertThat(VisualLayout.ofWindow(0, 24, 24, wc[0]).allowedVisualPairs()).isEqualTo(wc[1]);
        }
        assertThat(w5.isVisualRow(34)).isFalse();
        assertThat(w5.isVisualRow(35)).isTrue();
        assertThat(w5.isVisualRow(611)).isFalse();
    }

    @Test
    void evenOrNonPositiveWindowsAreErrors() {
        for (int w : new int[] {0, -3, 4}) {
            assertThatThrownBy(() -> VisualLayout.radiusOf(w)).isInstanceOf(IllegalArgumentException.class)
                    .hasMessage("window must be an odd number >= 1 (a w x w neighbourhood centred on the token), got " + w);
        }
    }

    @Test
    void denseVisualFlopsOfLlava15() throws Exception {
        VisualFlops.Dims d7 = VisualFlops.Dims.of(config("/hf-configs/llava-1.5-7b-hf.config.json"));
        assertThat(d7).isEqualTo(new VisualFlops.Dims(32, 4096, 32, 32, 128, 11008, 24, 24));
        assertThat(VisualFlops.dense(d7)).isEqualTo(7.63430436864e12); // paper: 7.63T
        VisualFlops.Dims d13 = VisualFlops.Dims.of(config("/vision/llava-1.5-13b-hf.config.json"));
        assertThat(VisualFlops.dense(d13)).isEqualTo(1.48881014784e13); // paper: 14.89T
        assertThat(String.format("%.4e", VisualFlops.dense(d7))).isEqualTo("7.6343e+12");
        assertThat(String.format("%.5e", VisualFlops.dense(d13))).isEqualTo("1.48881e+13");
    }

    @Test
    void prunedFlopsFollowTheReferenceFormula() throws Exception {
        VisualFlops.Dims d = VisualFlops.Dims.of(config("/hf-configs/llava-1.5-7b-hf.config.json"));
        double[] h = new double[32];
        java.util.Arrays.fill(h, 16);
        VisualFlops.Result r = VisualFlops.compute(d, 5, 16, h, h, 0.5);
        // 16 x [576 (8 d^2 16/32 + 6 d I / 2) + 4 x 12996 x 128 x 16]
        double expected = 16 * (576 * (8.0 * 4096 * 4096 * 0.5 + 6.0 * 4096 * 11008 * 0.5) + 4.0 * 12996 * 128 * 16);
        assertThat(r.pruned()).isCloseTo(expected, Offset.offset(1.0));
        assertThat(r.windowPairs()).isEqualTo(12_996);
        assertThat(r.visualKvFraction()).isEqualTo(256.0 / 1024);
        assertThat(r.dropOnly()).isCloseTo(r.dense() / 2, Offset.offset(1.0));
        // nothing pruned: pruned = dense except the attention term (window)
        double[] all = new double[32];
        java.util.Arrays.fill(all, 32);
        VisualFlops.Result none = VisualFlops.compute(d, 47, 32, all, all, 1.0);
        assertThat(none.pruned()).isCloseTo(none.dense(), Offset.offset(1.0));
    }

    @Test
    void headVoteReproducesAHandMadeCase() {
        // ratios[sample][layer][head]; 5 samples, vote 0.4 -> a head needs 3 samples with ratio > alpha
        double[][][] r = new double[5][3][3];
        double[][] l1 = {{0.2, 0.2, 0.2, 0.05, 0.05}, {0.2, 0.2, 0.05, 0.05, 0.05}, {0.1, 0.1, 0.1, 0.1, 0.1}};
        double[][] l2 = {{0.5, 0.5, 0.5, 0.5, 0.5}, {0.11, 0.11, 0.11, 0, 0}, {0, 0, 0, 0, 0}};
        for (int s = 0; s < 5; s++) {
            for (int h = 0; h < 3; h++) {
                r[s][0][h] = 0; // layer 0 is always kept, whatever its ratios
                r[s][1][h] = l1[h][s];
                r[s][2][h] = l2[h][s];
            }
        }
        boolean[][] keep = HeadSelection.vote(r, 0.1, 0.4, 1);
        assertThat(keep[0]).containsExactly(true, true, true);
        assertThat(keep[1]).containsExactly(true, false, false); // h2's 0.1 is not > 0.1
        assertThat(keep[2]).containsExactly(true, true, false);
        assertThat(HeadSelection.averageKept(keep)).isEqualTo(2.0);
        double alpha = HeadSelection.alphaFor(r, 0.4, 1, 2.0);
        assertThat(alpha).isCloseTo(0.105, Offset.offset(1e-12));
        assertThat(HeadSelection.vote(r, alpha, 0.4, 1)).isDeepEqualTo(keep);
        // all 3 per layer is not reachable: layer 2 head 2 never looks at the image (ratio 0 is never > alpha >= 0)
        assertThat(HeadSelection.averageKept(HeadSelection.vote(r, HeadSelection.alphaFor(r, 0.4, 1, 3.0), 0.4, 1))).isEqualTo(8.0 / 3);
        assertThat(HeadSelection.averageKept(HeadSelection.vote(r, HeadSelection.alphaFor(r, 0.4, 1, 1.0), 0.4, 1))).isEqualTo(1.0);
        assertThat(HeadSelection.meanRatios(r)[1][0]).isCloseTo((0.2 * 3 + 0.05 * 2) / 5, Offset.offset(1e-12));
    }

    @Test
    void voteBoundaryIsMoreThanFortyOfAHundredAndMasksNest() {
        assertThat(HeadSelection.minVotes(100, 0.4)).isEqualTo(41);
        double[][][] r = new double[100][3][1];
        for (int s = 0; s < 100; s++) {
            r[s][2][0] = s < 40 ? 1.0 : 0.0;
        }
        assertThat(HeadSelection.vote(r, 0.5, 0.4, 2)[2][0]).isFalse(); // 40 of 100 is not more than 40%
        r[40][2][0] = 1.0;
        assertThat(HeadSelection.vote(r, 0.5, 0.4, 2)[2][0]).isTrue();
        assertThat(HeadSelection.vote(r, 0.5, 0.4, 2)[0][0]).isTrue();
        Random random = new Random(9);
        double[][][] q = new double[20][6][8];
        for (double[][] s : q) {
            for (double[] l : s) {
                for (int h = 0; h < 8; h++) {
                    l[h] = Math.abs(random.nextGaussian()) * 0.1;
                }
            }
        }
        boolean[][] loose = HeadSelection.vote(q, 0.03, 0.4, 2);
        boolean[][] strict = HeadSelection.vote(q, 0.08, 0.4, 2);
        for (int l = 0; l < 6; l++) {
            for (int h = 0; h < 8; h++) {
                assertThat(!strict[l][h] || loose[l][h]).isTrue();
            }
        }
    }
}
