package io.whittle.methods.wgsef;

import java.util.List;
import java.util.Locale;

/**
 * A way to reduce a partition's matrices to exactly k groups per problem (the {@code solver} parameter). Inputs are
 * never modified; the result holds new arrays.
 */
public interface GroupSolver {

    /** The parameter value that selects this solver. */
    String name();

    /**
     * Solves one partition.
     *
     * @param partition the groups (see {@link GroupPartition})
     * @param weights   the group weights
     * @param k         groups to keep per problem ({@link GroupPartition#level})
     * @param matrices  one row-major array per member, in member order
     * @param grams     one calibration statistic per member (its input width), or null where the solver needs no data
     */
    WgsefSolution solve(GroupPartition partition, GroupWeights weights, int k, List<float[]> matrices, List<Gram> grams);

    /** The solver named by the {@code solver} parameter: {@code layerwise} (default) or {@code magnitude}. */
    static GroupSolver named(String solver, LayerwiseSolver.Options options) {
        String s = solver == null || solver.isBlank() ? "layerwise" : solver.trim().toLowerCase(Locale.ROOT);
        return switch (s) {
            case "layerwise" -> new LayerwiseSolver(options == null ? LayerwiseSolver.Options.defaults() : options);
            case "magnitude" -> new MagnitudeBaseline();
            default -> throw new IllegalArgumentException("solver: unknown value '" + solver + "'; expected layerwise or magnitude");
        };
    }

    /** Checks everything a solve needs before any work starts; every message names the parameter or tensor. */
    static void validate(GroupPartition partition, GroupWeights weights, int k, List<float[]> matrices, List<Gram> grams,
                         boolean gramsRequired) {
        if (partition == null) {
            throw new IllegalArgumentException("groups: a partition is required");
        }
        if (weights == null) {
            throw new IllegalArgumentException("weights: required");
        }
        ExactKProjection.checkLevel(partition, k);
        partition.checkData(matrices);
        List<GroupPartition.Member> members = partition.members();
        for (int i = 0; i < members.size(); i++) {
            float[] w = matrices.get(i);
            for (int e = 0; e < w.length; e++) {
                if (!Float.isFinite(w[e])) {
                    throw new IllegalArgumentException(members.get(i).matrix() + ": non-finite weight " + w[e]
                            + " at index " + e);
                }
            }
        }
        if (grams == null) {
            if (gramsRequired) {
                throw new IllegalArgumentException(partition.name() + ": the layerwise solver needs calibration statistics");
            }
            return;
        }
        if (grams.size() != members.size()) {
            throw new IllegalArgumentException(partition.name() + ": expected " + members.size()
                    + " calibration statistics, got " + grams.size());
        }
        for (int i = 0; i < members.size(); i++) {
            GroupPartition.Matrix m = members.get(i).matrix();
            Gram g = grams.get(i);
            if (g == null) {
                throw new IllegalArgumentException(m + ": missing calibration statistic");
            }
            if (g.dim() != m.cols()) {
                throw new IllegalArgumentException(m + ": calibration statistic has width " + g.dim() + ", expected "
                        + m.cols());
            }
            if (g.samples() == 0) {
                throw new IllegalArgumentException(m + ": calibration statistic has no samples");
            }
        }
    }
}
