package io.whittle.methods.wgsef;

import java.util.ArrayList;
import java.util.BitSet;
import java.util.List;
import java.util.OptionalDouble;

/**
 * {@code solver=layerwise}: the layer-wise WGSEF problem of wgsef.md §7,
 * <pre>  min_W'  sum_m omega_m 1/2 tr((W'_m - W_m) H~_m (W'_m - W_m)^T) + lambda S_{k,d}(W'),
 *          H~_m = X_m^T X_m / n + delta_m I,  delta_m = damping x mean diag(X_m^T X_m / n)</pre>
 * solved by {@link Fista} (step 1/L, L by power iteration) along a lambda continuation, finishing every stage with
 * the exact-k projection (§2.3) and a least-squares refit on the support ({@link SupportRefit}), and returning the
 * support with the lowest refit objective found along the path (§7 "lambda-continuation").
 *
 * <p><b>Members and omega.</b> A partition usually has one member (one matrix), where omega is irrelevant. For
 * {@code mlp-channels} the group j spans gate row j, up row j and down column j; the objective is the sum of the
 * three matrices' own layer-wise reconstruction objectives, gate and up with H of the MLP input and down with H of
 * the intermediate activation (act(gate x) * up x), each weighted by omega_m = 1 / tr(W_m H~_m W_m^T) so that the
 * three terms are relative errors and activations of different scale count equally. The coupling through the
 * intermediate activation (changing gate/up rows changes down's input) is ignored, as in every layer-wise method;
 * after the refit kept gate/up rows are exactly the original rows, so down's statistic stays valid for them.
 *
 * <p><b>Lambda.</b> Both terms are 2-homogeneous in W', so the path is set in the scale-free unit
 * lambda^ = lambda d / L: the prox parameter is mu = lambda / L and its gap ratio is 1 + 1/lambda^ (§2.3(4)). The path
 * starts at lambda^ = {@code initialLambda} (default 0.01, where nearly every group survives), multiplies by
 * {@code lambdaGrowth} (3) per stage with a warm start, and stops once a stage's prox output has exactly k groups
 * per problem with the gap condition, or after {@code maxStages}. Stage 0 is the starting point W itself, whose
 * top-k support is the magnitude support, refit; so the solver never returns a worse refit objective than the
 * refit magnitude choice.
 *
 * <p>Everything is seeded (the power iteration and the random-pivot root finder), and the same inputs give
 * byte-identical outputs for a fixed BLAS thread count.
 *
 * <p><b>Cost.</b> One FISTA iteration is one SGEMM rows x cols x cols per member plus O(rows x cols) passes (the
 * prox included); each stage adds one refit and one SGEMM to score it. Memory: about ten rows x cols float arrays on
 * the heap (W, the FISTA iterates, the best and current candidates, scratch) and two off-heap product buffers per
 * member, besides the caller's {@link Gram}s. Instances are immutable and may be shared across threads.
 */
public final class LayerwiseSolver implements GroupSolver {

    /**
     * Solver settings.
     *
     * @param damping           delta as a fraction of the mean diagonal of H (>= 0; default 0.01)
     * @param initialLambda     first lambda^ = lambda d / L of the path (> 0; default 0.01)
     * @param lambdaGrowth      factor between stages (> 1; default 3)
     * @param maxStages         stages after the starting point (>= 1; default 12)
     * @param maxIterations     FISTA iterations per stage (>= 1; default 300)
     * @param tolerance         stop a stage when ||x+ - x|| &lt;= tolerance ||x+|| (&gt;= 0; default 1e-6)
     * @param powerIterations   power-iteration steps for lambda_max(H) (>= 1; default 50)
     * @param refitIterations   masked-FISTA iterations when the exact refit is too expensive (>= 1; default 300)
     * @param exactRefitFlops   exact Cholesky refits always run below this many flops per member, and above it when
     *                          cheaper than {@code refitIterations} masked iterations (>= 0; default 2e11)
     * @param rootFinder        prox root finder (default random pivot)
     * @param seed              seed of the power iteration and the pivots
     */
    public record Options(double damping, double initialLambda, double lambdaGrowth, int maxStages, int maxIterations,
                          double tolerance, int powerIterations, int refitIterations, double exactRefitFlops,
                          RootFinder rootFinder, long seed) {

        public Options {
            require(damping >= 0 && Double.isFinite(damping), "damping", "must be finite and >= 0", damping);
            require(initialLambda > 0 && Double.isFinite(initialLambda), "initialLambda", "must be finite and > 0", initialLambda);
            require(lambdaGrowth > 1 && Double.isFinite(lambdaGrowth), "lambdaGrowth", "must be finite and > 1", lambdaGrowth);
            require(maxStages >= 1, "maxStages", "must be >= 1", maxStages);
            require(maxIterations >= 1, "maxIterations", "must be >= 1", maxIterations);
            require(tolerance >= 0 && Double.isFinite(tolerance), "tolerance", "must be finite and >= 0", tolerance);
            require(powerIterations >= 1, "powerIterations", "must be >= 1", powerIterations);
            require(refitIterations >= 1, "refitIterations", "must be >= 1", refitIterations);
            require(exactRefitFlops >= 0, "exactRefitFlops", "must be >= 0", exactRefitFlops);
            if (rootFinder == null) {
                throw new IllegalArgumentException("rootFinder: required");
            }
        }

        private static void require(boolean ok, String name, String what, double value) {
            if (!ok) {
                throw new IllegalArgumentException(name + ": " + what + ", got " + value);
            }
        }

        public static Options defaults() {
            return new Options(0.01, 0.01, 3, 12, 300, 1e-6, 50, 300, 2e11, RootFinder.RANDOM_PIVOT, 0x5EEDL);
        }

        public Options withDamping(double v) {
            return new Options(v, initialLambda, lambdaGrowth, maxStages, maxIterations, tolerance, powerIterations,
                    refitIterations, exactRefitFlops, rootFinder, seed);
        }

        public Options withPath(double initial, double growth, int stages) {
            return new Options(damping, initial, growth, stages, maxIterations, tolerance, powerIterations,
                    refitIterations, exactRefitFlops, rootFinder, seed);
        }

        public Options withIterations(int iterations, double tol) {
            return new Options(damping, initialLambda, lambdaGrowth, maxStages, iterations, tol, powerIterations,
                    refitIterations, exactRefitFlops, rootFinder, seed);
        }

        public Options withRefit(double flops, int iterations) {
            return new Options(damping, initialLambda, lambdaGrowth, maxStages, maxIterations, tolerance,
                    powerIterations, iterations, flops, rootFinder, seed);
        }

        public Options withRootFinder(RootFinder finder, long newSeed) {
            return new Options(damping, initialLambda, lambdaGrowth, maxStages, maxIterations, tolerance,
                    powerIterations, refitIterations, exactRefitFlops, finder, newSeed);
        }
    }

    private final Options options;

    public LayerwiseSolver(Options options) {
        this.options = options == null ? Options.defaults() : options;
    }

    public Options options() {
        return options;
    }

    @Override
    public String name() {
        return "layerwise";
    }

    @Override
    public WgsefSolution solve(GroupPartition partition, GroupWeights weights, int k, List<float[]> matrices,
                               List<Gram> grams) {
        long start = System.nanoTime();
        GroupSolver.validate(partition, weights, k, matrices, grams, true);
        double d = weights.weight(partition);
        List<GroupPartition.Member> members = partition.members();
        List<MemberObjective> objectives = new ArrayList<>();
        try {
            for (int i = 0; i < members.size(); i++) {
                objectives.add(new MemberObjective(members.get(i), matrices.get(i), grams.get(i), options.damping(),
                        options.powerIterations(), ProxWorkspace.mix(options.seed(), i)));
            }
            return run(partition, weights, d, k, objectives, start);
        } finally {
            for (MemberObjective o : objectives) {
                o.close();
            }
        }
    }

    private record Candidate(List<float[]> matrices, BitSet kept, double objective, double[] errors) {
    }

    private WgsefSolution run(GroupPartition partition, GroupWeights weights, double d, int k,
                              List<MemberObjective> objectives, long start) {
        int problems = partition.problems();
        double lipschitz = 0;
        for (MemberObjective o : objectives) {
            lipschitz = Math.max(lipschitz, o.weight * o.lipschitz * 1.02); // the Rayleigh quotient is a lower bound
        }
        if (!(lipschitz > 0)) {
            lipschitz = 1; // H = 0 and no damping: every W' has objective 0
        }
        List<float[]> original = new ArrayList<>();
        for (MemberObjective o : objectives) {
            original.add(o.w);
        }
        List<WgsefResult.Stage> path = new ArrayList<>();
        // stage 0: the starting point W (lambda = 0); its top-k support is the magnitude support
        List<float[]> startCopy = copies(original);
        Wgsef.Summary startSummary = Wgsef.prox(partition, d, k, 0, options.rootFinder(), options.seed(), startCopy);
        Candidate best = candidate(partition, k, original, objectives);
        int bestStage = 0;
        boolean bestGap = startSummary.gapHeld();
        path.add(new WgsefResult.Stage(0, 0, 0, 0, startSummary.nonzeroGroups(), startSummary.gapHeld(),
                best.objective(), rms(best.errors())));
        if (k < partition.problemSize()) {
            Fista fista = new Fista(partition, objectives, d, k, options.rootFinder(), options.seed(), lipschitz);
            for (int s = 1; s <= options.maxStages(); s++) {
                double relLambda = options.initialLambda() * Math.pow(options.lambdaGrowth(), s - 1);
                double mu = relLambda / d;
                fista.resetMomentum();
                int iterations = 0;
                while (iterations < options.maxIterations()) {
                    double change = fista.step(mu);
                    iterations++;
                    if (change <= options.tolerance()) {
                        break;
                    }
                }
                Wgsef.Summary summary = fista.lastSummary();
                Candidate c = candidate(partition, k, fista.iterate(), objectives);
                path.add(new WgsefResult.Stage(s, relLambda * lipschitz / d, relLambda, iterations,
                        summary.nonzeroGroups(), summary.gapHeld(), c.objective(), rms(c.errors())));
                if (c.objective() < best.objective()) {
                    best = c;
                    bestStage = s;
                    bestGap = summary.gapHeld();
                }
                if (summary.gapHeld() && summary.nonzeroGroups() == k * problems) {
                    break;
                }
            }
        }
        List<WgsefResult.MemberError> memberErrors = new ArrayList<>();
        for (int i = 0; i < objectives.size(); i++) {
            memberErrors.add(new WgsefResult.MemberError(objectives.get(i).member.matrix().name(), best.errors()[i]));
        }
        WgsefResult result = new WgsefResult(partition.name(), partition.spec().toString(), name(), weights.toString(),
                partition.groupCount(), problems, k, best.kept().cardinality(), partition.nonzeroGroups(best.matrices()),
                bestGap, bestStage, path, OptionalDouble.of(rms(best.errors())), memberErrors,
                (System.nanoTime() - start) / 1e9, best.kept());
        return new WgsefSolution(best.matrices(), result);
    }

    /** Projects {@code iterate} to its top-k support, refits W on it and scores the result. */
    private Candidate candidate(GroupPartition partition, int k, List<float[]> iterate, List<MemberObjective> objectives) {
        BitSet kept = ExactKProjection.select(partition, k, iterate).kept();
        List<float[]> refit = new ArrayList<>();
        double objective = 0;
        double[] errors = new double[objectives.size()];
        for (int i = 0; i < objectives.size(); i++) {
            MemberObjective o = objectives.get(i);
            float[] w = SupportRefit.refit(o, kept, options.exactRefitFlops(), options.refitIterations());
            double[] traces = o.traces(w, new float[w.length]);
            objective += 0.5 * o.weight * traces[1];
            errors[i] = o.relativeError(traces[0]);
            refit.add(w);
        }
        return new Candidate(refit, kept, objective, errors);
    }

    private static List<float[]> copies(List<float[]> in) {
        List<float[]> out = new ArrayList<>();
        for (float[] a : in) {
            out.add(a.clone());
        }
        return out;
    }

    private static double rms(double[] errors) {
        double s = 0;
        for (double e : errors) {
            s += e * e;
        }
        return Math.sqrt(s / errors.length);
    }
}
