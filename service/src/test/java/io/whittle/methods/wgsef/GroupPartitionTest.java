package io.whittle.methods.wgsef;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import io.whittle.methods.wgsef.GroupPartition.Matrix;
import java.util.List;
import java.util.Random;
import java.util.function.IntBinaryOperator;
import org.junit.jupiter.api.Test;

/** Group specs, keep levels and the index arithmetic of every group type, against explicit expectations. */
class GroupPartitionTest {

    private static GroupPartition of(String spec, String name, int rows, int cols, int headDim) {
        return GroupPartition.of(GroupSpec.parse(spec), new Matrix(name, rows, cols), headDim);
    }

    /** Checks groupOf and groupNorms of a single-member partition against an expected element -> group map. */
    private static void assertGroups(GroupPartition p, int expectedGroups, IntBinaryOperator expected) {
        GroupPartition.Member m = p.members().get(0);
        int rows = m.matrix().rows();
        int cols = m.matrix().cols();
        assertEquals(expectedGroups, p.groupCount());
        float[] x = Calibration.gaussian(new Random(rows * 31 + cols), rows * cols);
        double[] naive = new double[expectedGroups];
        for (int r = 0; r < rows; r++) {
            for (int c = 0; c < cols; c++) {
                int g = expected.applyAsInt(r, c);
                assertEquals(g, m.groupOf(r, c), "element (" + r + ", " + c + ")");
                naive[g] += (double) x[r * cols + c] * x[r * cols + c];
            }
        }
        double[] norms = p.groupNorms(List.of(x));
        for (int g = 0; g < expectedGroups; g++) {
            assertEquals(Math.sqrt(naive[g]), norms[g], 1e-12 * (1 + norms[g]));
        }
        // scaling group g by (g + 1) scales exactly its elements
        double[] scale = new double[expectedGroups];
        for (int g = 0; g < expectedGroups; g++) {
            scale[g] = g + 1;
        }
        float[] y = x.clone();
        p.scaleGroups(scale, List.of(y));
        for (int r = 0; r < rows; r++) {
            for (int c = 0; c < cols; c++) {
                assertEquals((float) ((expected.applyAsInt(r, c) + 1) * (double) x[r * cols + c]), y[r * cols + c]);
            }
        }
    }

    @Test
    void everyGroupTypeMapsElementsAsDocumented() {
        assertGroups(of("columns", "w", 6, 10, 0), 10, (r, c) -> c);
        assertGroups(of("rows", "w", 6, 10, 0), 6, (r, c) -> r);
        assertGroups(of("heads", "model.layers.0.self_attn.q_proj.weight", 12, 10, 4), 3, (r, c) -> r / 4);
        assertGroups(of("heads", "model.layers.0.self_attn.k_proj.weight", 8, 10, 4), 2, (r, c) -> r / 4);
        assertGroups(of("heads", "model.layers.0.self_attn.o_proj.weight", 10, 12, 4), 3, (r, c) -> c / 4);
        assertGroups(of("blocks:2x5", "w", 6, 10, 0), 6, (r, c) -> (r / 2) * 2 + c / 5);
        GroupPartition nm = of("nm:2:4", "w", 3, 8, 0);
        assertGroups(nm, 24, (r, c) -> r * 8 + c);
        assertEquals(4, nm.problemSize());
        assertEquals(6, nm.problems());
    }

    @Test
    void mlpChannelsJoinGateRowUpRowAndDownColumn() {
        int inter = 5;
        int hidden = 3;
        GroupPartition p = GroupPartition.mlpChannels(new Matrix("mlp.gate_proj.weight", inter, hidden),
                new Matrix("mlp.up_proj.weight", inter, hidden), new Matrix("mlp.down_proj.weight", hidden, inter));
        assertEquals(inter, p.groupCount());
        assertEquals(1, p.problems());
        assertEquals(3 * hidden, p.groupSize());
        assertEquals("mlp.", p.name());
        Random rnd = new Random(3);
        float[] gate = Calibration.gaussian(rnd, inter * hidden);
        float[] up = Calibration.gaussian(rnd, inter * hidden);
        float[] down = Calibration.gaussian(rnd, hidden * inter);
        double[] norms = p.groupNorms(List.of(gate, up, down));
        for (int j = 0; j < inter; j++) {
            double s = 0;
            for (int h = 0; h < hidden; h++) {
                s += gate[j * hidden + h] * gate[j * hidden + h] + up[j * hidden + h] * up[j * hidden + h]
                        + down[h * inter + j] * down[h * inter + j];
            }
            assertEquals(Math.sqrt(s), norms[j], 1e-6);
        }
        java.util.BitSet kept = new java.util.BitSet();
        kept.set(1);
        kept.set(3);
        p.zeroUnkept(kept, List.of(gate, up, down));
        for (int j = 0; j < inter; j++) {
            boolean k = j == 1 || j == 3;
            for (int h = 0; h < hidden; h++) {
                assertEquals(k, gate[j * hidden + h] != 0);
                assertEquals(k, up[j * hidden + h] != 0);
                assertEquals(k, down[h * inter + j] != 0);
            }
        }
        assertEquals(2, p.nonzeroGroups(List.of(gate, up, down)));
    }

    @Test
    void specsParseAndPrintCanonically() {
        for (String s : new String[] {"columns", "rows", "heads", "blocks:4x16", "nm:2:4", "mlp-channels"}) {
            assertEquals(s, GroupSpec.parse(s).toString());
        }
        assertEquals(GroupSpec.blocks(3, 7), GroupSpec.parse(" Blocks:3x7 "));
    }

    @Test
    void keepResolvesToALevel() {
        GroupPartition p = of("columns", "w", 4, 10, 0);
        assertEquals(3, p.level(Keep.parse("0.3")));
        assertEquals(4, p.level(Keep.parse("0.31")));
        assertEquals(1, p.level(Keep.parse("0.01")));
        assertEquals(10, p.level(Keep.parse("1.0")));
        assertEquals(1, p.level(Keep.parse("1")));
        assertEquals(7, p.level(Keep.parse("7")));
        assertEquals(2, of("nm:2:4", "w", 4, 8, 0).level(null));
    }

    private static void assertRejected(String expectedMessageStart, Runnable r) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, r::run);
        if (!e.getMessage().startsWith(expectedMessageStart)) {
            throw new AssertionError("message '" + e.getMessage() + "' does not start with '" + expectedMessageStart + "'");
        }
    }

    @Test
    void badParametersNameTheParameter() {
        assertRejected("groups: unknown group spec 'diagonal'", () -> GroupSpec.parse("diagonal"));
        assertRejected("groups: unknown group spec 'blocks:4'", () -> GroupSpec.parse("blocks:4"));
        assertRejected("groups: missing value", () -> GroupSpec.parse(" "));
        assertRejected("groups=nm:5:4: need 1 <= N <= M", () -> GroupSpec.parse("nm:5:4"));
        assertRejected("groups=blocks:0x4: block sides must be >= 1", () -> GroupSpec.parse("blocks:0x4"));
        assertRejected("groups=blocks:5x8: 5 does not divide the 32 rows of 'w' (32 x 48)", () -> of("blocks:5x8", "w", 32, 48, 0));
        assertRejected("groups=blocks:4x7: 7 does not divide the 48 columns", () -> of("blocks:4x7", "w", 32, 48, 0));
        assertRejected("groups=nm:2:5: 5 does not divide the 48 columns", () -> of("nm:2:5", "w", 32, 48, 0));
        assertRejected("groups=heads: 5 does not divide the 32 rows", () -> of("heads", "a.q_proj.weight", 32, 48, 5));
        assertRejected("groups=heads: head_dim must be >= 1", () -> of("heads", "a.q_proj.weight", 32, 48, 0));
        assertRejected("groups=heads: applies to q_proj, k_proj, v_proj", () -> of("heads", "mlp.gate_proj.weight", 32, 48, 8));
        assertRejected("groups=mlp-channels: spans gate, up and down", () -> of("mlp-channels", "w", 32, 48, 0));
        assertRejected("groups=mlp-channels: down", () -> GroupPartition.mlpChannels(new Matrix("g", 8, 4),
                new Matrix("u", 8, 4), new Matrix("d", 4, 7)));
        assertRejected("keep: count must be >= 1", () -> Keep.parse("0"));
        assertRejected("keep: count must be >= 1", () -> Keep.parse("-3"));
        assertRejected("keep: fraction must be in (0, 1]", () -> Keep.parse("1.5"));
        assertRejected("keep: fraction must be in (0, 1]", () -> Keep.parse("0.0"));
        assertRejected("keep: 'half' is neither", () -> Keep.parse("half"));
        assertRejected("keep: count 49 exceeds the 48 groups of 'w' (32 x 48) under groups=columns",
                () -> of("columns", "w", 32, 48, 0).level(Keep.count(49)));
        assertRejected("keep: required", () -> of("columns", "w", 32, 48, 0).level(null));
        assertRejected("keep: does not apply to groups=nm:2:4", () -> of("nm:2:4", "w", 32, 48, 0).level(Keep.count(2)));
        assertRejected("weights: unknown value 'flops'", () -> GroupWeights.parse("flops"));
        assertRejected("'w' (4 x 8): expected 32 values, got 31",
                () -> of("columns", "w", 4, 8, 0).groupNorms(List.of(new float[31])));
        assertArrayEquals(new double[8], of("columns", "w", 4, 8, 0).groupNorms(List.of(new float[32])));
    }

    @Test
    void weightsAreConstantPerPartition() {
        GroupPartition p = of("blocks:2x4", "w", 4, 8, 0);
        assertEquals(1, GroupWeights.parse(null).weight(p));
        assertEquals(8, GroupWeights.parse("size").weight(p));
        assertEquals(16, GroupWeights.parse("cost").weight(p));
    }
}
