package io.whittle.methods.camera;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.whittle.model.ModelSpec;
import io.whittle.model.ModelSpecs;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;

/** Prune counts of the real configurations (camera.md section 7, item 8), tie-breaking, allocation and alignment. */
class SelectionTest {

    private static ModelSpec shape(String name) throws Exception {
        return ModelSpecs.load(Path.of(SelectionTest.class.getResource("/shapes/" + name + ".json").toURI()));
    }

    @Test
    void pruneCountsOfTheRealConfigurationsMatchTheReferenceTable() throws Exception {
        double[] ratios = {0.20, 0.21, 0.25, 0.40, 0.50, 0.60};
        record Row(String shape, long ne, long[] counts) {
        }
        List<Row> table = List.of(
                new Row("deepseek-moe-16b-base", 92_928, new long[] {18_585, 19_514, 23_232, 37_171, 46_464, 55_756}),
                new Row("qwen2-57b-a14b", 184_320, new long[] {36_864, 38_707, 46_080, 73_728, 92_160, 110_592}),
                new Row("qwen1.5-moe-a2.7b", 90_112, new long[] {18_022, 18_923, 22_528, 36_044, 45_056, 54_067}),
                new Row("qwen3-30b-a3b", 98_304, new long[] {19_660, 20_643, 24_576, 39_321, 49_152, 58_982}),
                new Row("mixtral-8x7b", 114_688, new long[] {22_937, 24_084, 28_672, 45_875, 57_344, 68_812}),
                new Row("olmoe-1b-7b-0924", 65_536, new long[] {13_107, 13_762, 16_384, 26_214, 32_768, 39_321}));
        for (Row row : table) {
            ModelSpec spec = shape(row.shape());
            int firstMoe = spec.moeLayers().iterator().next();
            assertEquals(row.ne(), spec.moeChannelsPerLayer(), row.shape());
            assertEquals(row.ne(), MoePool.of(spec, firstMoe).size(), row.shape());
            for (int i = 0; i < ratios.length; i++) {
                assertEquals(row.counts()[i], Selection.prunedCount(row.ne(), ratios[i]), row.shape() + " @ " + ratios[i]);
            }
        }
        // the float trap: 184320 * 0.7 = 129023.99999999999 in IEEE double
        assertEquals(129_023, Selection.prunedCount(184_320, 0.7));
        // DeepSeek's layer 0 is dense; its MoE layers start at 1
        assertFalse(shape("deepseek-moe-16b-base").isMoeLayer(0));
        assertTrue(shape("deepseek-moe-16b-base").isMoeLayer(1));
    }

    @Test
    void indexMappingOfQwen2With57BShapes() throws Exception {
        MoePool pool = MoePool.of(shape("qwen2-57b-a14b"), 0);
        assertEquals(20480, pool.sharedWidth());
        assertEquals(20480, pool.expertOffset(0));
        assertEquals(20480 + 3 * 2560, pool.expertOffset(3));
        assertEquals(65, pool.groupCount());
        assertTrue(pool.isSharedGroup(0));
        assertEquals(63, pool.expertOfGroup(64));
        // Qwen1.5-MoE: shared/expert width ratio 4, not 8 (the reference code's `e >= 8` bug)
        MoePool q15 = MoePool.of(shape("qwen1.5-moe-a2.7b"), 0);
        assertEquals(5632, q15.groupOffset(1));
        assertEquals(5632 + 1408, q15.groupOffset(2));
    }

    @Test
    void lowestScoresArePrunedFirstAndTiesGoToTheLowerIndex() {
        double[] score = {3, 1, 2, 1, 0, 1, 5};
        assertArrayEquals(new boolean[] {false, true, false, false, true, false, false}, Selection.lowest(score, 2));
        assertArrayEquals(new boolean[] {false, true, false, true, true, false, false}, Selection.lowest(score, 3));
        assertArrayEquals(new boolean[] {false, true, true, true, true, true, false}, Selection.lowest(score, 5));
        assertEquals(0, Selection.count(Selection.lowest(score, 0)));
    }

    @Test
    void expertUniformKeepsTheBestOfEachGroup() {
        // shared width 4, two experts of width 3: pool [s0..s3 | e0c0..e0c2 | e1c0..e1c2]
        MoePool pool = new MoePool(0, null, 2, 3, 4, 8, false);
        double[] score = {9, 1, 1, 5, /* e0 */ 0, 7, 7, /* e1 */ 2, 2, 2};
        boolean[] pruned = Selection.perGroup(score, pool, 1, 2);
        assertArrayEquals(new boolean[] {false, true, true, false, true, true, false, true, true, false}, pruned);
        assertEquals(2 * (3 - 1) + (4 - 2), Selection.count(pruned));
    }

    @Test
    void keptWidthsAndAlignment() {
        assertEquals(1408 - 295, Selection.keptWidth(1408, 0.21));
        assertEquals(1, Selection.keptWidth(16, 0.99));
        assertEquals(1152, Selection.alignedWidth(1113, 64, 1408));
        assertEquals(1408, Selection.alignedWidth(1400, 64, 1408)); // never wider than the expert
        assertEquals(1113, Selection.alignedWidth(1113, 1, 1408));
        // the Ascend port's rounding: openPangu f=12800, r=0.2 -> 10240
        assertEquals(10240, Selection.alignedWidth(Selection.keptWidth(12800, 0.2), 64, 12800));
    }

    @Test
    void randomScoresDependOnlyOnSeedAndLayer() {
        assertArrayEquals(Selection.randomScores(50, 7, 3), Selection.randomScores(50, 7, 3));
        assertFalse(java.util.Arrays.equals(Selection.randomScores(50, 7, 3), Selection.randomScores(50, 8, 3)));
        assertFalse(java.util.Arrays.equals(Selection.randomScores(50, 7, 3), Selection.randomScores(50, 7, 4)));
    }
}
