package io.whittle.methods.wgsef;

import java.util.BitSet;
import java.util.List;
import java.util.OptionalDouble;

/**
 * What one solver run reports for one partition (one matrix, or the three matrices of an MLP under
 * {@code mlp-channels}), per wgsef.md §6 "Reporting" and §7 "Outputs".
 *
 * @param name            tensor name (or the MLP's common name prefix)
 * @param groups          the group spec, as text
 * @param solver          {@code layerwise} or {@code magnitude}
 * @param weights         the group-weight choice
 * @param groupCount      groups in the partition (over all problems)
 * @param problems        independent problems (1, or the number of N:M blocks)
 * @param level           k per problem
 * @param keptCount       groups kept by the final projection; always level x problems
 * @param nonzeroGroups   groups of the output with a non-zero element (keptCount unless a kept group is all zero)
 * @param gapHeld         layerwise: whether the prox output of the chosen stage already had at most k groups per
 *                        problem (then the projection removed nothing the prox kept, §2.3(4)); magnitude: whether
 *                        the top-k was strictly separated, b_[k] > b_[k+1] in every problem (the lambda -> infinity
 *                        limit of the same condition, §2.3(5))
 * @param bestStage       index in {@code lambdaPath} of the stage whose support was returned (-1 without a path)
 * @param lambdaPath      the continuation path (stage 0 is the starting point W itself, lambda = 0)
 * @param relativeError   ||X (W - W')^T|| / ||X W^T||, from H (for several members the root mean square of theirs);
 *                        empty when no calibration data were given
 * @param memberErrors    the same error per member matrix
 * @param seconds         wall time of the solve
 * @param keptGroups      the kept group indices (the removed structures are the complement)
 */
public record WgsefResult(String name, String groups, String solver, String weights, int groupCount, int problems,
                          int level, int keptCount, int nonzeroGroups, boolean gapHeld, int bestStage,
                          List<Stage> lambdaPath, OptionalDouble relativeError, List<MemberError> memberErrors,
                          double seconds, BitSet keptGroups) {

    /**
     * One lambda stage of the layer-wise solver.
     *
     * @param index          0 for the starting point, then 1, 2, ...
     * @param lambda         lambda in the units of the objective (sum_m omega_m f_m + lambda S)
     * @param relativeLambda lambda d / L, the scale-free strength: the prox's gap ratio is 1 + 1 / relativeLambda
     * @param iterations     FISTA iterations run in the stage
     * @param nonzeroGroups  non-zero groups of the prox output at the end of the stage
     * @param gapHeld        whether that output had at most k groups per problem
     * @param objective      the damped, member-weighted reconstruction objective after projection + refit
     * @param relativeError  the relative reconstruction error after projection + refit
     */
    public record Stage(int index, double lambda, double relativeLambda, int iterations, int nonzeroGroups,
                        boolean gapHeld, double objective, double relativeError) {
    }

    /** The relative reconstruction error of one member matrix. */
    public record MemberError(String tensor, double relativeError) {
    }

    public WgsefResult {
        lambdaPath = List.copyOf(lambdaPath);
        memberErrors = List.copyOf(memberErrors);
        keptGroups = (BitSet) keptGroups.clone();
    }

    @Override
    public BitSet keptGroups() {
        return (BitSet) keptGroups.clone();
    }
}
