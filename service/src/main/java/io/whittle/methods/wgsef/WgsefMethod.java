package io.whittle.methods.wgsef;

import io.whittle.forward.LayerObserver;
import io.whittle.forward.LayerVisitor;
import io.whittle.forward.LayerWeights;
import io.whittle.forward.LayerwisePipeline;
import io.whittle.forward.PipelineResult;
import io.whittle.methods.CompressionMethod;
import io.whittle.methods.JobContext;
import io.whittle.methods.MethodDescriptor;
import io.whittle.methods.MethodParams;
import io.whittle.methods.ParamSpec;
import io.whittle.model.ModelSpec;
import io.whittle.model.ModelSpec.Family;
import io.whittle.model.ModelSpec.LayerNames;
import io.whittle.model.ModelSpec.Mlp;
import io.whittle.tensor.FloatTensor;
import io.whittle.tensor.Shape;
import io.whittle.tensor.Tensor;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.EnumSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Pattern;
import java.util.regex.PatternSyntaxException;
import tools.jackson.databind.node.ArrayNode;
import tools.jackson.databind.node.ObjectNode;

/**
 * The {@code wgsef} job: brings every target matrix (or every MLP, with {@code groups=mlp-channels}) to exactly k
 * non-zero groups, layer by layer on calibration data. Per layer the pipeline's observation pass accumulates the
 * Gram matrix X^T X / n of every target's input (inputs shared by several targets, such as q/k/v, once), the
 * solver ({@code layerwise}: FISTA on the reconstruction objective with the WGSEF penalty, lambda continuation,
 * exact-k projection and least-squares refit; or the data-free {@code magnitude} baseline) replaces the weights, and
 * the next layer sees the sparsified outputs (sequential mode). The magnitude baseline's error is always reported
 * beside the chosen solver's so users see what the optimisation bought.
 */
public final class WgsefMethod implements CompressionMethod {

    /** Every MLP and expert projection (dense, routed, shared) of every supported family. */
    public static final String DEFAULT_TARGETS = ".*\\.(gate_proj|up_proj|down_proj|w1|w2|w3)\\.weight";

    private static final MethodDescriptor DESCRIPTOR = new MethodDescriptor("wgsef",
            "WGSEF structured sparsification: exactly k non-zero groups per matrix (or per MLP), layer-wise proximal gradient",
            List.of(
                    ParamSpec.string("groups", "mlp-channels",
                            "columns | rows | heads | blocks:RxC | nm:N:M | mlp-channels (gate row j + up row j + down column j)"),
                    ParamSpec.string("targets", DEFAULT_TARGETS, "regular expression over tensor names (whole-name match)"),
                    ParamSpec.string("keep", "0.5", "groups kept per matrix: a fraction 0 < keep <= 1 or an integer count >= 1"),
                    ParamSpec.choice("weights", "uniform", List.of("uniform", "size", "cost"), "group weights d_j"),
                    ParamSpec.choice("solver", "layerwise", List.of("layerwise", "magnitude"),
                            "layerwise proximal gradient on calibration data, or the magnitude baseline"),
                    ParamSpec.number("delta", 0.01, 0.0, false, 1.0, false,
                            "ridge damping of H as a fraction of its mean diagonal"),
                    ParamSpec.choice("layout", "masked", List.of("masked", "compact"),
                            "masked: exact zeros, same shapes; compact (mlp-channels only): channels removed, config updated"),
                    ParamSpec.choice("mode", "sequential", List.of("sequential", "parallel"),
                            "sequential: each layer sees the sparsified layers before it; parallel: the original ones"),
                    ParamSpec.integer("stages", 12, 1, 100, "lambda continuation stages"),
                    ParamSpec.integer("iterations", 300, 1, 100_000, "FISTA iterations per stage (at most)"),
                    ParamSpec.integer("seed", 24301, 0, null, "seed of the random-pivot root finder and the power iteration")),
            EnumSet.of(Family.LLAMA, Family.MIXTRAL, Family.QWEN2_MOE, Family.QWEN3_MOE, Family.OLMOE, Family.DEEPSEEK,
                    Family.LLAVA, Family.QWEN2_VL),
            true, true);

    @Override
    public MethodDescriptor descriptor() {
        return DESCRIPTOR;
    }

    /** One unit the solver works on: a single matrix, or the three matrices of an MLP under mlp-channels. */
    record Unit(String name, List<String> tensors, String widthKey) {
    }

    @Override
    public void check(MethodParams params, ModelSpec spec) {
        Plan plan = Plan.of(params, spec);
        for (int l = 0; l < spec.numLayers(); l++) {
            plan.units(l); // builds every partition: groups that do not divide a matrix fail here, before any work
        }
        plan.compactWidths();
    }

    @Override
    public void run(JobContext ctx) {
        Plan plan = Plan.of(ctx.params(), ctx.spec());
        ObjectNode report = ctx.report();
        ArrayNode matrices = report.putArray("matrices");
        double[] sums = new double[4]; // chosen error sum, magnitude error sum, count, kept groups
        long[] groupTotals = new long[2];
        Map<String, Integer> newWidths = new LinkedHashMap<>();
        LayerwisePipeline.Mode mode = ctx.params().getString("mode").equals("parallel")
                ? LayerwisePipeline.Mode.PARALLEL : LayerwisePipeline.Mode.SEQUENTIAL;

        LayerVisitor visitor = new LayerVisitor() {
            final Map<String, Gram> grams = new LinkedHashMap<>();
            List<Unit> units = List.of();

            @Override
            public LayerObserver observer(LayerWeights weights) {
                ctx.checkCancelled();
                units = plan.units(weights.layer());
                grams.clear();
                if (units.isEmpty()) {
                    return null;
                }
                Map<String, String> inputKeyOf = new LinkedHashMap<>();
                for (Unit u : units) {
                    for (String t : u.tensors()) {
                        inputKeyOf.put(t, inputKey(t));
                    }
                }
                return new LayerObserver() {
                    final Map<String, Object> last = new LinkedHashMap<>();

                    @Override
                    public boolean wantsLinearInput(String weightName) {
                        return inputKeyOf.containsKey(weightName);
                    }

                    @Override
                    public void linearInput(String weightName, Tensor input) {
                        String key = inputKeyOf.get(weightName);
                        if (last.get(key) == input) {
                            return; // q/k/v (and gate/up) share one input: accumulate it once
                        }
                        last.put(key, input);
                        Gram g = grams.computeIfAbsent(key, k -> new Gram(input.cols()));
                        try (FloatTensor host = ctx.backend().toHost(input)) {
                            g.accumulate(host);
                        }
                    }
                };
            }

            @Override
            public void compress(LayerWeights weights) {
                try {
                    for (Unit u : units) {
                        ctx.checkCancelled();
                        ObjectNode entry = matrices.addObject();
                        solveUnit(ctx, plan, u, weights, grams, entry, sums, groupTotals, newWidths);
                    }
                } finally {
                    grams.values().forEach(Gram::close);
                    grams.clear();
                }
            }

            @Override
            public void layerDone(LayerWeights weights) {
                ctx.writeLayer(weights);
            }
        };
        PipelineResult result = ctx.runPipeline("sparsify", visitor, mode);
        ctx.writeNonLayerTensorsAndFiles();
        if (plan.compact()) {
            ctx.output().writeJson("config.json", plan.compactConfig(newWidths));
        }
        ObjectNode summary = report.putObject("summary");
        summary.put("matrices", (long) sums[2]);
        summary.put("groups", groupTotals[0]);
        summary.put("kept_groups", groupTotals[1]);
        if (sums[2] > 0) {
            summary.put("mean_relative_error", sums[0] / sums[2]);
            summary.put("mean_relative_error_magnitude", sums[1] / sums[2]);
        }
        summary.put("solver", ctx.params().getString("solver"));
        summary.put("groups_spec", ctx.params().getString("groups"));
        summary.put("layout", ctx.params().getString("layout"));
        if (!newWidths.isEmpty()) {
            ObjectNode w = summary.putObject("compact_widths");
            newWidths.forEach(w::put);
        }
        summary.put("peak_host_bytes", result.peakHostBytes());
    }

    /** Which calibration input a target reads (targets with the same key share one Gram matrix). */
    static String inputKey(String tensor) {
        return tensor.replaceAll("(q_proj|k_proj|v_proj)\\.weight$", "#qkv")
                .replaceAll("o_proj\\.weight$", "#o")
                .replaceAll("(gate_proj|up_proj|w1|w3)\\.weight$", "#in")
                .replaceAll("(down_proj|w2)\\.weight$", "#act");
    }

    private static void solveUnit(JobContext ctx, Plan plan, Unit u, LayerWeights weights, Map<String, Gram> grams,
                                  ObjectNode entry, double[] sums, long[] groupTotals, Map<String, Integer> newWidths) {
        List<float[]> data = new ArrayList<>();
        List<Gram> unitGrams = new ArrayList<>();
        for (String t : u.tensors()) {
            data.add(weights.get(t).toArray());
            Gram g = grams.get(inputKey(t));
            if (g == null) {
                throw new IllegalStateException("no calibration input was observed for " + t);
            }
            unitGrams.add(g);
        }
        GroupPartition partition = plan.partition(u);
        int k = plan.level(partition);
        WgsefSolution chosen = plan.solver().solve(partition, plan.weights(), k, data, unitGrams);
        WgsefSolution magnitude = plan.solver() instanceof MagnitudeBaseline ? chosen
                : new MagnitudeBaseline().solve(partition, plan.weights(), k, data, unitGrams);
        WgsefResult r = chosen.result();
        int nonzero = partition.nonzeroGroups(chosen.matrices());
        if (r.keptCount() != k * partition.problems() || nonzero > r.keptCount()) {
            throw new IllegalStateException(u.name() + ": the solver kept " + r.keptCount() + " groups (" + nonzero
                    + " non-zero), expected exactly " + k * partition.problems());
        }
        BitSet kept = r.keptGroups();
        for (int i = 0; i < u.tensors().size(); i++) {
            String t = u.tensors().get(i);
            FloatTensor old = weights.get(t);
            float[] values = chosen.matrices().get(i);
            FloatTensor replacement;
            if (plan.compact()) {
                replacement = compactMatrix(ctx, old.shape(), values, kept, i == 2);
            } else {
                replacement = ctx.allocator().allocate(old.shape(), t);
                replacement.copyFrom(values, 0, 0, values.length);
            }
            weights.replace(t, replacement);
        }
        if (plan.compact()) {
            newWidths.merge(u.widthKey(), kept.cardinality(), (a, b) -> {
                if (!a.equals(b)) {
                    throw new IllegalStateException("compact layout: " + u.widthKey() + " would get widths " + a + " and " + b);
                }
                return a;
            });
        }
        entry.put("name", u.name());
        ArrayNode tensors = entry.putArray("tensors");
        u.tensors().forEach(tensors::add);
        entry.put("groups", r.groups());
        entry.put("group_count", r.groupCount());
        entry.put("problems", r.problems());
        entry.put("k", k);
        entry.put("kept", r.keptCount());
        entry.put("nonzero_groups", nonzero);
        entry.put("gap_held", r.gapHeld());
        entry.put("solver", r.solver());
        if (r.relativeError().isPresent()) {
            entry.put("relative_error", r.relativeError().getAsDouble());
        }
        if (magnitude.result().relativeError().isPresent()) {
            entry.put("relative_error_magnitude", magnitude.result().relativeError().getAsDouble());
        }
        entry.put("best_stage", r.bestStage());
        ArrayNode path = entry.putArray("lambda_path");
        for (WgsefResult.Stage s : r.lambdaPath()) {
            ObjectNode st = path.addObject();
            st.put("lambda", s.lambda());
            st.put("relative_lambda", s.relativeLambda());
            st.put("iterations", s.iterations());
            st.put("nonzero_groups", s.nonzeroGroups());
            st.put("gap_held", s.gapHeld());
            st.put("relative_error", s.relativeError());
        }
        entry.put("seconds", r.seconds());
        sums[0] += r.relativeError().orElse(0);
        sums[1] += magnitude.result().relativeError().orElse(0);
        sums[2] += 1;
        groupTotals[0] += r.groupCount();
        groupTotals[1] += r.keptCount();
    }

    /** Keeps the kept channels: rows of gate/up, columns of down (member index 2). */
    private static FloatTensor compactMatrix(JobContext ctx, Shape shape, float[] values, BitSet kept, boolean columns) {
        int rows = Math.toIntExact(shape.dim(0));
        int cols = Math.toIntExact(shape.dim(1));
        int k = kept.cardinality();
        FloatTensor out = ctx.allocator().allocate(columns ? Shape.of(rows, k) : Shape.of(k, cols), "compact");
        if (columns) {
            float[] row = new float[k];
            for (int r = 0; r < rows; r++) {
                int c = 0;
                for (int j = kept.nextSetBit(0); j >= 0; j = kept.nextSetBit(j + 1)) {
                    row[c++] = values[r * cols + j];
                }
                out.copyFrom(row, 0, (long) r * k, k);
            }
        } else {
            int r = 0;
            for (int j = kept.nextSetBit(0); j >= 0; j = kept.nextSetBit(j + 1)) {
                out.copyFrom(values, j * cols, (long) r * cols, cols);
                r++;
            }
        }
        return out;
    }

    /** The parsed parameters applied to one model: which units each layer has and how they are solved. */
    static final class Plan {
        private final ModelSpec spec;
        private final GroupSpec groups;
        private final Keep keep;
        private final GroupWeights weights;
        private final GroupSolver solver;
        private final Pattern targets;
        private final boolean compact;

        private Plan(ModelSpec spec, GroupSpec groups, Keep keep, GroupWeights weights, GroupSolver solver, Pattern targets,
                     boolean compact) {
            this.spec = spec;
            this.groups = groups;
            this.keep = keep;
            this.weights = weights;
            this.solver = solver;
            this.targets = targets;
            this.compact = compact;
        }

        static Plan of(MethodParams p, ModelSpec spec) {
            GroupSpec groups = GroupSpec.parse(p.getString("groups"));
            Keep keep = groups.kind() == GroupSpec.Kind.NM ? null : Keep.parse(p.getString("keep"));
            GroupWeights weights = GroupWeights.parse(p.getString("weights"));
            Pattern targets;
            try {
                targets = Pattern.compile(p.getString("targets"));
            } catch (PatternSyntaxException e) {
                throw new IllegalArgumentException("targets: invalid regular expression: " + e.getDescription());
            }
            boolean compact = p.getString("layout").equals("compact");
            if (compact && groups.kind() != GroupSpec.Kind.MLP_CHANNELS) {
                throw new IllegalArgumentException("layout: compact needs groups=mlp-channels (the unit that can be removed "
                        + "physically); got groups=" + groups);
            }
            LayerwiseSolver.Options options = LayerwiseSolver.Options.defaults()
                    .withDamping(p.getDouble("delta"))
                    .withPath(LayerwiseSolver.Options.defaults().initialLambda(), LayerwiseSolver.Options.defaults().lambdaGrowth(),
                            p.getInt("stages"))
                    .withIterations(p.getInt("iterations"), LayerwiseSolver.Options.defaults().tolerance())
                    .withRootFinder(RootFinder.RANDOM_PIVOT, p.getLong("seed"));
            GroupSolver solver = GroupSolver.named(p.getString("solver"), options);
            Plan plan = new Plan(spec, groups, keep, weights, solver, targets, compact);
            boolean any = false;
            for (int l = 0; l < spec.numLayers() && !any; l++) {
                any = !plan.units(l).isEmpty();
            }
            if (!any) {
                throw new IllegalArgumentException("targets: the expression '" + targets.pattern() + "' matches no "
                        + (groups.kind() == GroupSpec.Kind.MLP_CHANNELS ? "MLP projection" : "linear weight") + " of this "
                        + spec.modelType() + " model (e.g. " + spec.layer(0).q() + ")");
            }
            return plan;
        }

        boolean compact() {
            return compact;
        }

        GroupWeights weights() {
            return weights;
        }

        GroupSolver solver() {
            return solver;
        }

        List<Unit> units(int layer) {
            LayerNames n = spec.layer(layer);
            List<Unit> out = new ArrayList<>();
            if (groups.kind() == GroupSpec.Kind.MLP_CHANNELS) {
                if (n.dense() != null) {
                    addMlp(out, n.dense(), "dense");
                } else {
                    for (Mlp e : n.moe().experts()) {
                        addMlp(out, e, "expert");
                    }
                    if (n.moe().shared() != null) {
                        addMlp(out, n.moe().shared(), "shared");
                    }
                }
            } else {
                List<String> linears = new ArrayList<>(List.of(n.q(), n.k(), n.v(), n.o()));
                if (n.dense() != null) {
                    linears.addAll(n.dense().all());
                } else {
                    for (Mlp e : n.moe().experts()) {
                        linears.addAll(e.all());
                    }
                    if (n.moe().shared() != null) {
                        linears.addAll(n.moe().shared().all());
                    }
                }
                for (String t : linears) {
                    if (targets.matcher(t).matches()) {
                        out.add(new Unit(t, List.of(t), null));
                    }
                }
            }
            for (Unit u : out) {
                level(partition(u)); // groups that do not divide a matrix, or a keep count too large, fail here
            }
            return out;
        }

        private void addMlp(List<Unit> out, Mlp mlp, String widthKey) {
            if (mlp.all().stream().anyMatch(t -> targets.matcher(t).matches())) {
                out.add(new Unit(commonPrefix(mlp.gate(), mlp.down()), mlp.all(), widthKey));
            }
        }

        private final Map<String, Shape> shapes = new LinkedHashMap<>();

        GroupPartition partition(Unit u) {
            if (shapes.isEmpty()) {
                spec.expectedTensors().forEach(t -> shapes.put(t.name(), t.shape()));
            }
            if (u.tensors().size() == 3 && groups.kind() == GroupSpec.Kind.MLP_CHANNELS) {
                return GroupPartition.mlpChannels(matrix(u.tensors().get(0)), matrix(u.tensors().get(1)),
                        matrix(u.tensors().get(2)));
            }
            return GroupPartition.of(groups, matrix(u.tensors().get(0)), spec.headDim());
        }

        private GroupPartition.Matrix matrix(String tensor) {
            Shape s = shapes.get(tensor);
            return new GroupPartition.Matrix(tensor, Math.toIntExact(s.dim(0)), Math.toIntExact(s.dim(1)));
        }

        int level(GroupPartition p) {
            return p.level(keep);
        }

        /** For the compact layout: the width each MLP class gets, checked to be the same across layers. */
        Map<String, Integer> compactWidths() {
            Map<String, Integer> widths = new LinkedHashMap<>();
            if (!compact) {
                return widths;
            }
            for (int l = 0; l < spec.numLayers(); l++) {
                LayerNames n = spec.layer(l);
                List<Mlp> all = new ArrayList<>();
                if (n.dense() != null) {
                    all.add(n.dense());
                } else {
                    all.addAll(n.moe().experts());
                    if (n.moe().shared() != null) {
                        all.add(n.moe().shared());
                    }
                }
                List<Unit> units = units(l);
                for (Mlp m : all) {
                    String key = n.dense() != null ? "dense" : (m == n.moe().shared() ? "shared" : "expert");
                    Unit u = units.stream().filter(x -> x.tensors().equals(m.all())).findFirst().orElse(null);
                    int width = Math.toIntExact(shapes.get(m.gate()).dim(0));
                    int newWidth = u == null ? width : level(partition(u));
                    Integer prev = widths.putIfAbsent(key, newWidth);
                    if (prev != null && prev != newWidth) {
                        throw new IllegalArgumentException("layout: compact needs one width per MLP class, but the " + key
                                + " MLPs would get " + prev + " and " + newWidth + " channels (target all of them, or use "
                                + "layout=masked)");
                    }
                }
            }
            if (spec.family() == Family.DEEPSEEK && widths.containsKey("shared") && widths.containsKey("expert")) {
                int nShared = spec.moe().sharedIntermediate() / spec.moe().expertIntermediate();
                if (widths.get("shared") != nShared * widths.get("expert")) {
                    throw new IllegalArgumentException("layout: compact on deepseek needs the shared width (" + widths.get("shared")
                            + ") to equal n_shared_experts (" + nShared + ") x the expert width (" + widths.get("expert") + ")");
                }
            }
            return widths;
        }

        /** config.json with the new MLP widths. */
        ObjectNode compactConfig(Map<String, Integer> widths) {
            compactWidths();
            ObjectNode config = (ObjectNode) spec.config().deepCopy();
            ObjectNode text = spec.family() == Family.LLAVA ? (ObjectNode) config.get("text_config") : config;
            if (widths.containsKey("dense")) {
                text.put("intermediate_size", widths.get("dense"));
            }
            if (widths.containsKey("expert")) {
                String key = switch (spec.family()) {
                    case MIXTRAL, OLMOE -> "intermediate_size";
                    default -> "moe_intermediate_size";
                };
                text.put(key, widths.get("expert"));
            }
            if (widths.containsKey("shared") && spec.family() == Family.QWEN2_MOE) {
                text.put("shared_expert_intermediate_size", widths.get("shared"));
            }
            return config;
        }

        private static String commonPrefix(String a, String b) {
            int i = 0;
            while (i < Math.min(a.length(), b.length()) && a.charAt(i) == b.charAt(i)) {
                i++;
            }
            return a.substring(0, i);
        }
    }

}
