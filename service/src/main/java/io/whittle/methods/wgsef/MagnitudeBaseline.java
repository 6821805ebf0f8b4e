package io.whittle.methods.wgsef;

import java.util.ArrayList;
import java.util.List;
import java.util.OptionalDouble;

/**
 * {@code solver=magnitude}: the data-free baseline. Keeps the k groups of largest weighted norm per problem (ties to
 * the lower index) and zeroes the rest, with no optimisation and no refit. Calibration statistics, when given, are
 * used only to report the reconstruction error.
 */
public final class MagnitudeBaseline implements GroupSolver {

    @Override
    public String name() {
        return "magnitude";
    }

    @Override
    public WgsefSolution solve(GroupPartition partition, GroupWeights weights, int k, List<float[]> matrices,
                               List<Gram> grams) {
        long start = System.nanoTime();
        GroupSolver.validate(partition, weights, k, matrices, grams, false);
        List<float[]> out = new ArrayList<>();
        for (float[] w : matrices) {
            out.add(w.clone());
        }
        ExactKProjection.Selection sel = ExactKProjection.project(partition, k, out);
        List<WgsefResult.MemberError> errors = new ArrayList<>();
        OptionalDouble overall = OptionalDouble.empty();
        if (grams != null) {
            double sumSq = 0;
            for (int i = 0; i < out.size(); i++) {
                GroupPartition.Member mem = partition.members().get(i);
                try (MemberObjective obj = new MemberObjective(mem, matrices.get(i), grams.get(i), 0, 0, 0)) {
                    double err = obj.relativeError(obj.traces(out.get(i), new float[out.get(i).length])[0]);
                    errors.add(new WgsefResult.MemberError(mem.matrix().name(), err));
                    sumSq += err * err;
                }
            }
            overall = OptionalDouble.of(Math.sqrt(sumSq / out.size()));
        }
        WgsefResult result = new WgsefResult(partition.name(), partition.spec().toString(), name(), weights.toString(),
                partition.groupCount(), partition.problems(), k, sel.keptCount(), partition.nonzeroGroups(out),
                sel.separated(), -1, List.of(), overall, errors, (System.nanoTime() - start) / 1e9, sel.kept());
        return new WgsefSolution(out, result);
    }
}
