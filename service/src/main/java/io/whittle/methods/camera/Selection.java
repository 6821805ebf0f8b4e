package io.whittle.methods.camera;

import java.util.Arrays;
import java.util.Comparator;
import java.util.SplittableRandom;

/**
 * Which micro-experts of a layer to prune, from a score per micro-expert in pool order (lowest pruned first, ties
 * to the lower pool index). Counts follow the reference's {@code int(N * ratio)} in IEEE double, so Qwen2-57B at
 * ratio 0.7 prunes 129,023 of 184,320 (184320 * 0.7 = 129023.99999999999).
 */
public final class Selection {

    /** How pruning is spread over a layer. */
    public enum Allocation {
        /** One ranking over all micro-experts of the layer (shared and routed together): the paper. */
        LAYER("layer"),
        /** Every routed expert keeps the same number of its own best micro-experts; the shared expert likewise. */
        EXPERT_UNIFORM("expert-uniform");

        private final String param;

        Allocation(String param) {
            this.param = param;
        }

        public String param() {
            return param;
        }

        public static Allocation of(String param) {
            return Arrays.stream(values()).filter(a -> a.param.equals(param)).findFirst()
                    .orElseThrow(() -> new IllegalArgumentException("unknown allocation '" + param + "'"));
        }
    }

    /** What ranks the micro-experts. */
    public enum Criterion {
        /** CAMERA's energy (the method). */
        ENERGY("energy"),
        /** Squared norm of the micro-expert's 3 x hidden weights (baseline). */
        MAGNITUDE("magnitude"),
        /** Uniform random scores from a seed (baseline). */
        RANDOM("random");

        private final String param;

        Criterion(String param) {
            this.param = param;
        }

        public String param() {
            return param;
        }

        public static Criterion of(String param) {
            return Arrays.stream(values()).filter(c -> c.param.equals(param)).findFirst()
                    .orElseThrow(() -> new IllegalArgumentException("unknown selection '" + param + "'"));
        }
    }

    private Selection() {
    }

    /** {@code (long) (n * ratio)} in double arithmetic: the number of micro-experts a layer loses. */
    public static long prunedCount(long n, double ratio) {
        return (long) (n * ratio);
    }

    /** Width an expert of {@code width} channels keeps under expert-uniform allocation: {@code f - (long)(f * ratio)}. */
    public static int keptWidth(int width, double ratio) {
        return Math.toIntExact(width - prunedCount(width, ratio));
    }

    /** {@code kept} rounded up to a multiple of {@code align}, at most {@code width}. */
    public static int alignedWidth(int kept, int align, int width) {
        if (align <= 1) {
            return kept;
        }
        long rounded = ((long) kept + align - 1) / align * align;
        return (int) Math.min(width, rounded);
    }

    /** Random scores for the random baseline: a function of the seed and the layer only. */
    public static double[] randomScores(int n, long seed, int layer) {
        SplittableRandom random = new SplittableRandom(seed * 0x9E3779B97F4A7C15L + layer);
        double[] s = new double[n];
        for (int i = 0; i < n; i++) {
            s[i] = random.nextDouble();
        }
        return s;
    }

    /** Indices [from, from + count) ordered by ascending score, ties to the lower index. */
    static Integer[] ascending(double[] score, int from, int count) {
        Integer[] idx = new Integer[count];
        for (int i = 0; i < count; i++) {
            idx[i] = from + i;
        }
        Arrays.sort(idx, Comparator.<Integer>comparingDouble(i -> score[i]).thenComparingInt(i -> i));
        return idx;
    }

    /** Layer allocation: prune the {@code count} lowest-scoring micro-experts of the whole pool. */
    public static boolean[] lowest(double[] score, long count) {
        if (count < 0 || count > score.length) {
            throw new IllegalArgumentException("cannot prune " + count + " of " + score.length + " micro-experts");
        }
        boolean[] pruned = new boolean[score.length];
        Integer[] order = ascending(score, 0, score.length);
        for (int i = 0; i < count; i++) {
            pruned[order[i]] = true;
        }
        return pruned;
    }

    /**
     * Expert-uniform allocation: in each group of the pool keep the {@code keepExpert} (routed) or
     * {@code keepShared} (shared) highest-scoring micro-experts and prune the rest.
     */
    public static boolean[] perGroup(double[] score, MoePool pool, int keepExpert, int keepShared) {
        boolean[] pruned = new boolean[score.length];
        for (int g = 0; g < pool.groupCount(); g++) {
            int width = pool.groupWidth(g);
            int keep = pool.isSharedGroup(g) ? keepShared : keepExpert;
            if (keep < 0 || keep > width) {
                throw new IllegalArgumentException("cannot keep " + keep + " of " + width + " channels");
            }
            Integer[] order = ascending(score, pool.groupOffset(g), width);
            for (int i = 0; i < width - keep; i++) {
                pruned[order[i]] = true;
            }
        }
        return pruned;
    }

    /** Number of true entries. */
    public static long count(boolean[] mask) {
        long n = 0;
        for (boolean b : mask) {
            if (b) {
                n++;
            }
        }
        return n;
    }
}
