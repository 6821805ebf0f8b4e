package io.whittle.methods.camera;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.whittle.compute.cpu.CpuBackend;
import io.whittle.forward.LayerWeights;
import io.whittle.model.Checkpoint;
import io.whittle.model.ModelSpec;
import io.whittle.model.ModelSpec.Family;
import io.whittle.model.ModelSpec.Mlp;
import io.whittle.tensor.FloatTensor;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * The invariants of camera.md section 7 on a real decoder layer of each MoE family: the energy equals the
 * micro-expert's explicit output energy under the routing the forward used (checked against an fp64 computation
 * from the weights, including an independent router), zeroing a micro-expert changes the block output by exactly
 * minus its contribution, up/down rescaling and channel permutation are symmetries, and experts without tokens get
 * energy 0.
 */
class EnergyOraclesTest {

    private static final double ALPHA = 0.3;

    @TempDir
    Path dir;

    private static int moeLayer(ModelSpec spec) {
        return spec.moeLayers().iterator().next();
    }

    private LayerHarness harness(Family family, int sequences, int length) {
        ModelSpec spec = CameraFixtures.write(CameraFixtures.tiny(family, 11), dir.resolve(family.modelType()));
        Checkpoint ckpt = Checkpoint.open(dir.resolve(family.modelType()));
        return new LayerHarness(spec, ckpt, moeLayer(spec), sequences, length, 99);
    }

    private static double silu(double v) {
        return v / (1.0 + Math.exp(-v));
    }

    private static double dot(FloatTensor w, int row, float[] x) {
        double s = 0;
        for (int i = 0; i < x.length; i++) {
            s += (double) w.get((long) row * x.length + i) * x[i];
        }
        return s;
    }

    /** fp64 routing from the router weights: softmax over all experts, top-k (ties to lower index), family renorm. */
    private static double[] referenceRouting(ModelSpec spec, FloatTensor router, float[] x) {
        int experts = spec.moe().experts();
        double[] logits = new double[experts];
        double max = Double.NEGATIVE_INFINITY;
        for (int e = 0; e < experts; e++) {
            logits[e] = dot(router, e, x);
            max = Math.max(max, logits[e]);
        }
        double sum = 0;
        for (int e = 0; e < experts; e++) {
            logits[e] = Math.exp(logits[e] - max);
            sum += logits[e];
        }
        boolean[] taken = new boolean[experts];
        double[] a = new double[experts];
        double selected = 0;
        for (int i = 0; i < spec.moe().topK(); i++) {
            int best = -1;
            for (int e = 0; e < experts; e++) {
                if (!taken[e] && (best < 0 || logits[e] > logits[best])) {
                    best = e;
                }
            }
            taken[best] = true;
            a[best] = logits[best] / sum;
            selected += a[best];
        }
        if (spec.moe().renormalize()) {
            for (int e = 0; e < experts; e++) {
                a[e] /= selected + spec.moe().renormEpsilon();
            }
        }
        return a;
    }

    /** phi_j(t) in fp64 for every micro-expert (pool order) and token, with the forward's routing. */
    private static double[][] phi(LayerHarness h, LayerHarness.Run run, LayerWeights w) {
        MoePool pool = MoePool.of(h.spec, h.layer);
        int tokens = h.batch.totalTokens();
        double[][] phi = new double[tokens][pool.size()];
        for (int t = 0; t < tokens; t++) {
            float[] x = run.x.row(t);
            float[] routing = run.routingOf(t, pool.experts());
            for (int g = 0; g < pool.groupCount(); g++) {
                double a = pool.isSharedGroup(g) ? (pool.sharedGated() ? run.sharedGateOf(t) : 1.0) : routing[pool.expertOfGroup(g)];
                if (a == 0) {
                    continue;
                }
                Mlp mlp = pool.groupMlp(g);
                for (int c = 0; c < pool.groupWidth(g); c++) {
                    phi[t][pool.groupOffset(g) + c] = a * silu(dot(w.get(mlp.gate()), c, x)) * dot(w.get(mlp.up()), c, x);
                }
            }
        }
        return phi;
    }

    /** Column j of the down projection of pool index j. */
    private static double[] downColumn(MoePool pool, LayerWeights w, int j) {
        for (int g = 0; g < pool.groupCount(); g++) {
            int off = pool.groupOffset(g);
            if (j >= off && j < off + pool.groupWidth(g)) {
                FloatTensor down = w.get(pool.groupMlp(g).down());
                double[] col = new double[pool.hidden()];
                for (int r = 0; r < col.length; r++) {
                    col[r] = down.get((long) r * pool.groupWidth(g) + (j - off));
                }
                return col;
            }
        }
        throw new IllegalArgumentException("pool index " + j);
    }

    private static double relErr(double[] a, double[] ref) {
        double num = 0, den = 0;
        for (int i = 0; i < a.length; i++) {
            num += (a[i] - ref[i]) * (a[i] - ref[i]);
            den += ref[i] * ref[i];
        }
        return Math.sqrt(num / den);
    }

    private static double[] toDouble(FloatTensor t) {
        double[] out = new double[(int) t.numel()];
        for (int i = 0; i < out.length; i++) {
            out[i] = t.get(i);
        }
        return out;
    }

    @ParameterizedTest
    @EnumSource(value = Family.class, names = {"MIXTRAL", "QWEN2_MOE", "QWEN3_MOE", "OLMOE", "DEEPSEEK"})
    void energyIsTheExplicitOutputEnergyUnderTheModelsRouting(Family family) {
        try (LayerHarness h = harness(family, 3, 20);
             CpuBackend backend = new CpuBackend();
             LayerWeights w = h.load();
             LayerHarness.Run run = h.run(backend, w, 25)) { // 25-token groups: three forward groups of whole sequences
            MoePool pool = MoePool.of(h.spec, h.layer);
            FloatTensor router = w.get(pool.names().router());
            int tokens = h.batch.totalTokens();
            for (int t = 0; t < tokens; t++) {
                double[] ref = referenceRouting(h.spec, router, run.x.row(t));
                float[] got = run.routingOf(t, pool.experts());
                for (int e = 0; e < pool.experts(); e++) {
                    assertEquals(ref[e], got[e], 1e-6, family + " routing of token " + t + ", expert " + e);
                }
            }
            double[][] phi = phi(h, run, w);
            double[] sum = new double[pool.size()];
            double[] max = new double[pool.size()];
            for (int j = 0; j < pool.size(); j++) {
                double[] col = downColumn(pool, w, j);
                for (int t = 0; t < tokens; t++) {
                    double norm = 0;
                    for (double c : col) {
                        double yj = phi[t][j] * c; // component of the explicit contribution y_j(t) = phi_j(t) w_j
                        norm += yj * yj;
                    }
                    sum[j] += norm;
                    max[j] = Math.max(max[j], norm);
                }
            }
            double[] expected = new double[pool.size()];
            for (int j = 0; j < expected.length; j++) {
                expected[j] = (1 - ALPHA) * sum[j] + ALPHA * max[j];
            }
            double[] energy = run.energy.energy(ALPHA);
            assertTrue(relErr(energy, expected) < 1e-5, family + ": energy vs fp64 explicit output energy, rel err "
                    + relErr(energy, expected));
            for (double e : energy) {
                assertTrue(e >= 0 && Double.isFinite(e));
            }
            assertEquals(tokens, run.energy.tokens());
            long routed = 0;
            for (long c : run.energy.tokensPerExpert()) {
                routed += c;
            }
            assertEquals((long) tokens * h.spec.moe().topK(), routed);
        }
    }

    @ParameterizedTest
    @EnumSource(value = Family.class, names = {"MIXTRAL", "QWEN2_MOE", "DEEPSEEK"})
    void zeroingAMicroExpertRemovesExactlyItsContribution(Family family) {
        try (LayerHarness h = harness(family, 2, 24);
             CpuBackend backend = new CpuBackend();
             LayerWeights dense = h.load();
             LayerHarness.Run before = h.run(backend, dense, 1 << 20)) {
            MoePool pool = MoePool.of(h.spec, h.layer);
            double[][] phi = phi(h, before, dense);
            // the busiest routed channel of the busiest expert, and (where present) a shared channel
            int busiest = 0;
            for (int e = 1; e < pool.experts(); e++) {
                if (before.energy.tokensPerExpert()[e] > before.energy.tokensPerExpert()[busiest]) {
                    busiest = e;
                }
            }
            List<Integer> targets = new ArrayList<>(List.of(pool.expertOffset(busiest) + 5));
            if (pool.hasShared()) {
                targets.add(7);
            }
            for (int j : targets) {
                try (LayerWeights pruned = h.load()) {
                    int g = groupOf(pool, j);
                    CameraPrune.mask(pruned, pool.groupMlp(g), pool.hidden(), pool.groupWidth(g), List.of(j - pool.groupOffset(g)));
                    try (LayerHarness.Run after = h.run(backend, pruned, 1 << 20)) {
                        double[] col = downColumn(pool, dense, j);
                        int tokens = h.batch.totalTokens();
                        double[] diff = new double[tokens * pool.hidden()];
                        double[] expected = new double[diff.length];
                        for (int t = 0; t < tokens; t++) {
                            for (int r = 0; r < pool.hidden(); r++) {
                                int i = t * pool.hidden() + r;
                                diff[i] = (double) after.y.get(i) - before.y.get(i);
                                expected[i] = -phi[t][j] * col[r];
                            }
                        }
                        assertTrue(relErr(diff, expected) < 1e-3, family + " micro-expert " + j + ": y' - y vs -y_j, rel err "
                                + relErr(diff, expected));
                        assertEquals(0.0, after.energy.energy(ALPHA)[j], family + ": a zeroed micro-expert has energy 0");
                    }
                }
            }
        }
    }

    private static int groupOf(MoePool pool, int j) {
        for (int g = 0; g < pool.groupCount(); g++) {
            if (j >= pool.groupOffset(g) && j < pool.groupOffset(g) + pool.groupWidth(g)) {
                return g;
            }
        }
        throw new IllegalArgumentException("pool index " + j);
    }

    @ParameterizedTest
    @EnumSource(value = Family.class, names = {"QWEN2_MOE", "OLMOE"})
    void upDownRescalingLeavesOutputAndEnergyUnchanged(Family family) {
        try (LayerHarness h = harness(family, 2, 24);
             CpuBackend backend = new CpuBackend();
             LayerWeights dense = h.load();
             LayerHarness.Run before = h.run(backend, dense, 1 << 20);
             LayerWeights scaled = h.load()) {
            MoePool pool = MoePool.of(h.spec, h.layer);
            double c = 2.5;
            for (int g = 0; g < pool.groupCount(); g++) {
                Mlp mlp = pool.groupMlp(g);
                FloatTensor up = scaled.get(mlp.up());
                FloatTensor down = scaled.get(mlp.down());
                int width = pool.groupWidth(g);
                for (int j = 0; j < width; j += 3) { // every third channel of every group, by a non-power-of-two
                    for (int i = 0; i < pool.hidden(); i++) {
                        up.set((long) j * pool.hidden() + i, (float) (up.get((long) j * pool.hidden() + i) * c));
                        down.set((long) i * width + j, (float) (down.get((long) i * width + j) / c));
                    }
                }
            }
            try (LayerHarness.Run after = h.run(backend, scaled, 1 << 20)) {
                assertTrue(relErr(toDouble(after.y), toDouble(before.y)) < 1e-5);
                assertTrue(relErr(after.energy.energy(ALPHA), before.energy.energy(ALPHA)) < 1e-5);
            }
        }
    }

    @ParameterizedTest
    @EnumSource(value = Family.class, names = {"QWEN2_MOE", "MIXTRAL"})
    void permutingAnExpertsChannelsPermutesItsEnergiesAndKeepsTheOutput(Family family) {
        try (LayerHarness h = harness(family, 2, 24);
             CpuBackend backend = new CpuBackend();
             LayerWeights dense = h.load();
             LayerHarness.Run before = h.run(backend, dense, 1 << 20);
             LayerWeights permuted = h.load()) {
            MoePool pool = MoePool.of(h.spec, h.layer);
            List<Integer> perm = new ArrayList<>();
            for (int i = 0; i < pool.expertWidth(); i++) {
                perm.add(i);
            }
            Collections.shuffle(perm, new Random(5));
            int g = pool.groupCount() - 1; // the last routed expert
            Mlp mlp = pool.groupMlp(g);
            int width = pool.groupWidth(g);
            permuted.replace(mlp.gate(), CameraPrune.rows(dense.get(mlp.gate()), perm, pool.hidden(), h.alloc));
            permuted.replace(mlp.up(), CameraPrune.rows(dense.get(mlp.up()), perm, pool.hidden(), h.alloc));
            permuted.replace(mlp.down(), CameraPrune.columns(dense.get(mlp.down()), perm, pool.hidden(), width, h.alloc));
            try (LayerHarness.Run after = h.run(backend, permuted, 1 << 20)) {
                assertTrue(relErr(toDouble(after.y), toDouble(before.y)) < 1e-5);
                double[] eb = before.energy.energy(ALPHA);
                double[] ea = after.energy.energy(ALPHA);
                double[] expected = eb.clone();
                int off = pool.groupOffset(g);
                for (int i = 0; i < width; i++) {
                    expected[off + i] = eb[off + perm.get(i)];
                }
                assertTrue(relErr(ea, expected) < 1e-5);
            }
        }
    }

    @Test
    void expertsWithoutTokensGetZeroEnergyAndAreCounted() {
        // 3 tokens with top-2 of 8 experts: at least two experts receive nothing
        try (LayerHarness h = harness(Family.QWEN2_MOE, 1, 3);
             CpuBackend backend = new CpuBackend();
             LayerWeights w = h.load();
             LayerHarness.Run run = h.run(backend, w, 1 << 20)) {
            MoePool pool = MoePool.of(h.spec, h.layer);
            double[] energy = run.energy.energy(0.5);
            int empty = 0;
            for (int e = 0; e < pool.experts(); e++) {
                boolean routed = false;
                for (int t = 0; t < 3; t++) {
                    routed |= run.routingOf(t, pool.experts())[e] != 0;
                }
                double[] slice = java.util.Arrays.copyOfRange(energy, pool.expertOffset(e), pool.expertOffset(e) + pool.expertWidth());
                if (!routed) {
                    empty++;
                    assertArrayEquals(new double[pool.expertWidth()], slice, "expert " + e + " had no tokens");
                } else {
                    assertTrue(java.util.Arrays.stream(slice).anyMatch(v -> v > 0));
                }
            }
            assertTrue(empty >= 2);
            assertEquals(empty, run.energy.expertsWithoutTokens());
            for (double e : energy) {
                assertTrue(Double.isFinite(e) && e >= 0);
            }
        }
    }
}
