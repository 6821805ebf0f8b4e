package io.whittle.methods.wgsef;

import java.util.BitSet;
import java.util.List;

/**
 * The final projection to exactly k groups (wgsef.md §2.3, "Service rule"): keep the k groups with the largest
 * weighted norm b_j = sqrt(d_j) ||x_j||, ties going to the lower group index, and zero the rest. The prox of the
 * convex envelope alone never guarantees k non-zero groups (§2.3(3)), so every result ends with this projection.
 *
 * <p>Debiasing comes in two forms. {@link #proxProjectUndo} is the data-free one: it runs the prox, reports
 * whether the gap condition held (then the projection removes nothing the prox had kept), keeps the top k groups of
 * the prox output and undoes the ridge shrink by dividing them by their c_j (which restores their pre-prox values).
 * The least-squares refit on the support, where calibration data exist, is done by {@link LayerwiseSolver}.
 *
 * <p>With one weight d for all groups of a partition (the {@link GroupWeights} case) the ranking by b_j is the
 * ranking by ||x_j||; {@link #topK(double[], int)} ranks arbitrary weighted norms.
 */
public final class ExactKProjection {

    /**
     * The groups kept by a projection, their count (k per problem), and whether the choice was strict in every
     * problem (b_[k] > b_[k+1], so no tie at the boundary had to be broken by index).
     */
    public record Selection(BitSet kept, int keptCount, boolean separated) {
    }

    /**
     * Outcome of {@link #proxProjectUndo}: kept groups, the non-zero groups of the prox output before the
     * projection, and whether the gap condition held in every problem.
     */
    public record Outcome(BitSet kept, int keptCount, int nonzeroBeforeProjection, boolean gapHeld) {
    }

    private ExactKProjection() {
    }

    /** Indices of the k largest values of {@code b} (ties to the lower index), in decreasing order of b. */
    public static int[] topK(double[] b, int k) {
        if (k < 1) {
            throw new IllegalArgumentException("k: level must be >= 1, got " + k);
        }
        int m = b.length;
        int kk = Math.min(k, m);
        int[] idx = new int[m];
        for (int i = 0; i < m; i++) {
            idx[i] = i;
        }
        IndexSort.sort(idx, m, b, true, new int[m]);
        return java.util.Arrays.copyOf(idx, kk);
    }

    /** The top-k groups of every problem of {@code partition}, without changing the data. */
    public static Selection select(GroupPartition partition, int k, List<float[]> data) {
        checkLevel(partition, k);
        partition.checkData(data);
        int ps = partition.problemSize();
        ProxWorkspace ws = new ProxWorkspace().ensure(ps);
        BitSet kept = new BitSet(partition.groupCount());
        boolean separated = true;
        double[] norms = partition.isBlockwise() ? new double[ps] : partition.groupNorms(data);
        float[] x = data.get(0);
        for (int p = 0; p < partition.problems(); p++) {
            if (partition.isBlockwise()) {
                for (int j = 0; j < ps; j++) {
                    norms[j] = Math.abs((double) x[p * ps + j]);
                }
            }
            separated &= selectInto(norms, ps, k, ws, kept, p * ps);
        }
        return new Selection(kept, kept.cardinality(), separated);
    }

    /** Keeps the top-k groups of every problem and zeroes the rest, in place (no debiasing). */
    public static Selection project(GroupPartition partition, int k, List<float[]> data) {
        Selection s = select(partition, k, data);
        partition.zeroUnkept(s.kept(), data);
        return s;
    }

    /**
     * The data-free service rule: prox_{lambda S} with weight d and level k, gap report, projection to the top-k
     * groups of the prox output, and undoing of the ridge shrink on those groups; in place.
     */
    public static Outcome proxProjectUndo(GroupPartition partition, double d, int k, double lambda, RootFinder finder,
                                          long seed, List<float[]> data) {
        BitSet kept = new BitSet(partition.groupCount());
        Wgsef.Summary s = apply(partition, d, k, lambda, finder, seed, data, true, kept);
        return new Outcome(kept, kept.cardinality(), s.nonzeroGroups(), s.gapHeld());
    }

    /**
     * Selects the top k of {@code v[0..m)} into {@code kept} at {@code base}; returns whether the boundary was
     * strict.
     */
    static boolean selectInto(double[] v, int m, int k, ProxWorkspace ws, BitSet kept, int base) {
        int kk = Math.min(k, m);
        int[] idx = ws.index;
        for (int i = 0; i < m; i++) {
            idx[i] = i;
        }
        IndexSort.sort(idx, m, v, true, ws.sortTmp);
        for (int i = 0; i < kk; i++) {
            kept.set(base + idx[i]);
        }
        return kk >= m || v[idx[kk - 1]] > v[idx[kk]];
    }

    /**
     * The prox (and optionally projection + undo) over every problem of a partition, in place. Single-problem
     * partitions reduce the group norms once, solve one problem and scale once; N:M partitions run block by block
     * with one workspace and a per-block seed.
     */
    static Wgsef.Summary apply(GroupPartition partition, double d, int k, double lambda, RootFinder finder, long seed,
                               List<float[]> data, boolean projectAndUndo, BitSet keptOut) {
        checkLevel(partition, k);
        Wgsef.checkWeight(d);
        Wgsef.checkLambda(lambda);
        partition.checkData(data);
        int ps = partition.problemSize();
        int kk = Math.min(k, ps);
        ProxWorkspace ws = new ProxWorkspace().ensure(ps);
        double[] dd = Wgsef.constant(ps, d);
        double[] scale = new double[ps];
        double[] u = new double[ps];
        double[] out = projectAndUndo ? new double[ps] : null;
        int[] nonzero = new int[1];
        double[] tau = new double[1];
        if (!partition.isBlockwise()) {
            double[] a = partition.groupNorms(data);
            ws.seed(seed);
            Wgsef.proxKernel(a, dd, 0, ps, kk, lambda, finder, ws, scale, u, nonzero, tau);
            if (projectAndUndo) {
                undoOnTopK(a, scale, out, kk, ws, keptOut, 0);
            }
            partition.scaleGroups(scale, data);
            return new Wgsef.Summary(nonzero[0], nonzero[0] <= kk, 1);
        }
        float[] x = data.get(0);
        double[] a = new double[ps];
        int totalNonzero = 0;
        boolean gap = true;
        // small blocks with one weight (N:M): the dedicated exact scan; lambda = 0 stays the identity
        boolean small = ps <= SmallProblemProx.MAX_GROUPS && lambda > 0;
        int[] order = new int[ps];
        double[] inverse = new double[ps];
        for (int p = 0; p < partition.problems(); p++) {
            int base = p * ps;
            for (int j = 0; j < ps; j++) {
                double v = Math.abs((double) x[base + j]);
                if (!(v < Double.POSITIVE_INFINITY)) {
                    throw new IllegalArgumentException(partition.name() + ": non-finite value " + x[base + j]
                            + " at index " + (base + j));
                }
                a[j] = v;
            }
            int nz;
            if (small) {
                nz = SmallProblemProx.solve(a, ps, kk, lambda * d, scale, order, inverse);
            } else {
                ws.seed(ProxWorkspace.mix(seed, p));
                Wgsef.proxKernel(a, dd, 0, ps, kk, lambda, finder, ws, scale, u, nonzero, tau);
                nz = nonzero[0];
            }
            totalNonzero += nz;
            gap &= nz <= kk;
            if (projectAndUndo) {
                undoOnTopK(a, scale, out, kk, ws, keptOut, base);
            }
            for (int j = 0; j < ps; j++) {
                x[base + j] = (float) (scale[j] * x[base + j]);
            }
        }
        return new Wgsef.Summary(totalNonzero, gap, partition.problems());
    }

    /**
     * Replaces the prox scales by the projection-with-undo scales: 1 on the top k groups of the prox output (so
     * z_j / c_j = x_j), 0 elsewhere.
     */
    private static void undoOnTopK(double[] a, double[] scale, double[] out, int k, ProxWorkspace ws, BitSet kept,
                                   int base) {
        int m = scale.length;
        for (int j = 0; j < m; j++) {
            out[j] = scale[j] * a[j]; // the output norm; the constant sqrt(d) does not change the order
        }
        BitSet local = new BitSet(m);
        selectInto(out, m, k, ws, local, 0);
        for (int j = 0; j < m; j++) {
            if (local.get(j)) {
                scale[j] = 1;
                kept.set(base + j);
            } else {
                scale[j] = 0;
            }
        }
    }

    static void checkLevel(GroupPartition partition, int k) {
        if (k < 1) {
            throw new IllegalArgumentException("k: level must be >= 1, got " + k + " for " + partition.name());
        }
        if (k > partition.problemSize()) {
            throw new IllegalArgumentException("k: level " + k + " exceeds the " + partition.problemSize()
                    + " groups per problem of " + partition.describe());
        }
    }
}
