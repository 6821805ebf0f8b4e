package io.whittle.methods.camera;

import io.whittle.compute.Backend;
import io.whittle.forward.LayerObserver;
import io.whittle.forward.LayerVisitor;
import io.whittle.forward.LayerWeights;
import io.whittle.methods.CompressionMethod;
import io.whittle.methods.JobContext;
import io.whittle.methods.MethodDescriptor;
import io.whittle.methods.MethodParams;
import io.whittle.methods.ParamSpec;
import io.whittle.methods.camera.Selection.Allocation;
import io.whittle.methods.camera.Selection.Criterion;
import io.whittle.model.ModelSpec;
import io.whittle.model.ModelSpec.Family;
import io.whittle.model.ModelSpec.Mlp;
import io.whittle.tensor.FloatTensor;
import io.whittle.tensor.HostAllocator;
import io.whittle.tensor.Shape;
import io.whittle.tensor.Tensor;
import java.util.ArrayList;
import java.util.List;
import tools.jackson.databind.node.ArrayNode;
import tools.jackson.databind.node.ObjectNode;

/**
 * {@code camera-p}: CAMERA's structured micro-expert pruning. Per MoE layer, scores every micro-expert by its energy
 * (or, as baselines, by weight magnitude or at random) and removes the lowest {@code (long)(N_e * ratio)} of them
 * (allocation {@code layer}), or keeps the same number of best micro-experts in every expert (allocation
 * {@code expert-uniform}). Layout {@code masked} zeroes the pruned rows of gate/up and columns of down and leaves
 * every other byte as it was; layout {@code compact} removes them and updates config.json.
 */
public final class CameraPrune implements CompressionMethod {

    public static final String NAME = "camera-p";

    private static final MethodDescriptor DESCRIPTOR = new MethodDescriptor(NAME,
            "CAMERA-P: prune the lowest-energy micro-experts (gate row, up row, down column) of every MoE layer",
            List.of(
                    ParamSpec.number("ratio", 0.2, 0.0, false, 1.0, true,
                            "fraction of each MoE layer's micro-experts to prune; a layer loses (long)(N_e * ratio)"),
                    CameraParams.ALPHA,
                    CameraParams.MODE,
                    ParamSpec.choice("allocation", "layer", List.of("layer", "expert-uniform"),
                            "layer: one ranking per layer across all experts and the shared expert (the paper); "
                                    + "expert-uniform: every expert keeps f - (long)(f * ratio) of its own best micro-experts"),
                    ParamSpec.choice("layout", "masked", List.of("masked", "compact"),
                            "masked: same shapes, pruned rows/columns zeroed; compact (expert-uniform only): rows/columns "
                                    + "removed and the widths in config.json updated"),
                    ParamSpec.integer("align", 1, 1, null,
                            "compact only: round every kept width up to a multiple of this, keeping the next-best micro-experts"),
                    ParamSpec.choice("selection", "energy", List.of("energy", "magnitude", "random"),
                            "what ranks micro-experts: energy (CAMERA), magnitude (squared norm of the 3 x hidden weights) "
                                    + "or random (baselines)"),
                    ParamSpec.integer("seed", 0, 0, null, "seed of selection=random")),
            CameraParams.FAMILIES, true, true);

    @Override
    public MethodDescriptor descriptor() {
        return DESCRIPTOR;
    }

    @Override
    public void check(MethodParams params, ModelSpec spec) {
        CameraParams.requireMoe(NAME, spec);
        boolean compact = params.getString("layout").equals("compact");
        if (compact && !params.getString("allocation").equals("expert-uniform")) {
            throw new IllegalArgumentException(NAME + ": layout=compact needs allocation=expert-uniform (allocation=layer "
                    + "leaves experts of different widths, which config.json cannot express)");
        }
        if (!compact && params.getLong("align") != 1) {
            throw new IllegalArgumentException(NAME + ": align applies only to layout=compact");
        }
    }

    /** The validated settings of one run. */
    record Settings(double ratio, double alpha, Allocation allocation, boolean compact, int align, Criterion criterion,
                    long seed) {
        static Settings of(MethodParams p) {
            return new Settings(p.getDouble("ratio"), p.getDouble("alpha"), Allocation.of(p.getString("allocation")),
                    p.getString("layout").equals("compact"), p.getInt("align"), Criterion.of(p.getString("selection")),
                    p.getLong("seed"));
        }
    }

    /** Widths one layer keeps under expert-uniform allocation. */
    record UniformWidths(int expert, int shared) {
        static UniformWidths of(ModelSpec spec, MoePool pool, Settings s) {
            int expert = Selection.alignedWidth(Selection.keptWidth(pool.expertWidth(), s.ratio()), s.align(), pool.expertWidth());
            int shared = 0;
            if (pool.hasShared()) {
                if (spec.family() == Family.DEEPSEEK) {
                    // DeepSeek's shared block is n_shared_experts experts of the routed width, fused; each keeps as many
                    // as a routed expert, so config.json can still state the shared width as n_shared * moe width
                    shared = pool.sharedWidth() / pool.expertWidth() * expert;
                } else {
                    shared = Selection.alignedWidth(Selection.keptWidth(pool.sharedWidth(), s.ratio()), s.align(),
                            pool.sharedWidth());
                }
            }
            return new UniformWidths(expert, shared);
        }
    }

    @Override
    public void run(JobContext ctx) {
        ModelSpec spec = ctx.spec();
        Settings s = Settings.of(ctx.params());
        ObjectNode result = ctx.report();
        result.put("ratio", s.ratio());
        result.put("alpha", s.alpha());
        result.put("mode", ctx.params().getString("mode"));
        result.put("allocation", s.allocation().param());
        result.put("layout", s.compact() ? "compact" : "masked");
        result.put("align", s.align());
        result.put("selection", s.criterion().param());
        result.put("seed", s.seed());
        result.put("pool_order", "shared channels, then expert 0 channels 0..f-1, expert 1, ...");
        result.put("routing_weights", RoutingNote.TEXT);
        ArrayNode layers = result.putArray("layers");
        Totals totals = new Totals();
        UniformWidths lastWidths;
        try (PruneVisitor visitor = new PruneVisitor(ctx, spec, s, layers, totals)) {
            ctx.runPipeline(NAME, visitor, CameraParams.mode(ctx.params()));
            lastWidths = visitor.lastWidths;
        }
        long t = System.nanoTime();
        ctx.writeNonLayerTensorsAndFiles();
        if (s.compact()) {
            ObjectNode config = compactConfig(spec, lastWidths);
            ctx.output().writeJson("config.json", config);
            result.set("config_changes", configChanges(spec, config));
        }
        ctx.addStageSeconds("camera.write", (System.nanoTime() - t) / 1e9);
        totals.write(result.putObject("totals"), ctx, s);
    }

    /** Scores each MoE layer during its forward, then prunes it and writes it. */
    private static final class PruneVisitor implements LayerVisitor, AutoCloseable {
        private final JobContext ctx;
        private final ModelSpec spec;
        private final Settings settings;
        private final ArrayNode layers;
        private final Totals totals;
        private EnergyScorer scorer;
        UniformWidths lastWidths;

        PruneVisitor(JobContext ctx, ModelSpec spec, Settings settings, ArrayNode layers, Totals totals) {
            this.ctx = ctx;
            this.spec = spec;
            this.settings = settings;
            this.layers = layers;
            this.totals = totals;
        }

        @Override
        public LayerObserver observer(LayerWeights weights) {
            scorer = EnergyScorer.forLayer(ctx, weights, ctx.calibration().totalTokens());
            return scorer;
        }

        @Override
        public void compress(LayerWeights weights) {
            if (scorer == null) {
                return;
            }
            try {
                UniformWidths w = pruneLayer(ctx, spec, settings, scorer, weights, layers, totals);
                if (w != null) {
                    lastWidths = w;
                }
            } finally {
                close();
            }
        }

        @Override
        public void layerDone(LayerWeights weights) {
            ctx.writeLayer(weights);
        }

        /** Releases the current layer's scorer (also when the pipeline fails mid-layer). */
        @Override
        public void close() {
            if (scorer != null) {
                scorer.close();
                scorer = null;
            }
        }
    }

    /** Scores, selects, measures and applies the pruning of one MoE layer; returns the uniform widths (or null). */
    private static UniformWidths pruneLayer(JobContext ctx, ModelSpec spec, Settings s, EnergyScorer scorer,
                                            LayerWeights weights, ArrayNode layers, Totals totals) {
        MoePool pool = scorer.pool();
        long t0 = System.nanoTime();
        LayerEnergy le = scorer.result();
        double[] energy = le.energy(s.alpha());
        double[] score = switch (s.criterion()) {
            case ENERGY -> energy;
            case MAGNITUDE -> pool.magnitudesSquared(weights, ctx.backend());
            case RANDOM -> Selection.randomScores(pool.size(), s.seed(), pool.layer());
        };
        boolean[] pruned;
        UniformWidths widths = null;
        if (s.allocation() == Allocation.LAYER) {
            pruned = Selection.lowest(score, Selection.prunedCount(pool.size(), s.ratio()));
        } else {
            widths = UniformWidths.of(spec, pool, s);
            pruned = Selection.perGroup(score, pool, widths.expert(), widths.shared());
        }
        long t1 = System.nanoTime();
        double deltaSq = prunedDeltaSquared(ctx.backend(), ctx.allocator(), scorer, weights, pruned);
        double relErr = MoeOutputError.relative(deltaSq, scorer.denseOutputSquared());
        long t2 = System.nanoTime();
        int[] keptWidths = new int[pool.groupCount()];
        long removedBytes = 0;
        for (int g = 0; g < pool.groupCount(); g++) {
            List<Integer> keep = new ArrayList<>();
            List<Integer> drop = new ArrayList<>();
            for (int j = 0; j < pool.groupWidth(g); j++) {
                (pruned[pool.groupOffset(g) + j] ? drop : keep).add(j);
            }
            keptWidths[g] = keep.size();
            if (drop.isEmpty()) {
                continue;
            }
            Mlp mlp = pool.groupMlp(g);
            if (s.compact()) {
                compact(weights, mlp, pool.hidden(), keep, ctx.allocator());
                for (String n : mlp.all()) {
                    removedBytes += (long) drop.size() * pool.hidden() * weights.dtype(n).byteSize();
                }
            } else {
                mask(weights, mlp, pool.hidden(), pool.groupWidth(g), drop);
            }
        }
        long t3 = System.nanoTime();
        ctx.addStageSeconds("camera.score", scorer.seconds());
        ctx.addStageSeconds("camera.select", (t1 - t0) / 1e9);
        ctx.addStageSeconds("camera.error", (t2 - t1) / 1e9);
        ctx.addStageSeconds("camera.apply", (t3 - t2) / 1e9);

        long prunedCount = Selection.count(pruned);
        ObjectNode n = CameraAnalyze.layerReport(le, energy);
        n.put("pruned", prunedCount);
        n.put("kept", pool.size() - prunedCount);
        int[] expertKept = new int[pool.experts()];
        for (int e = 0; e < pool.experts(); e++) {
            expertKept[e] = keptWidths[pool.hasShared() ? e + 1 : e];
        }
        CameraReports.ints(n.putArray("expert_kept_widths"), expertKept);
        n.put("shared_kept", pool.hasShared() ? keptWidths[0] : 0);
        int emptied = 0;
        for (int k : expertKept) {
            if (k == 0) {
                emptied++;
            }
        }
        n.put("experts_fully_pruned", emptied);
        CameraReports.energyStats((ObjectNode) n.get("energy"), energy, pruned);
        if (s.criterion() != Criterion.ENERGY) {
            CameraReports.energyStats(n.putObject("selection_score"), score, pruned);
        }
        CameraReports.putFinite(n, "relative_error", relErr);
        n.put("expert_parameters_before", 3L * pool.hidden() * pool.size());
        n.put("expert_parameters_after", 3L * pool.hidden() * (pool.size() - prunedCount));
        n.put("seconds", (t3 - t0) / 1e9 + scorer.seconds());
        layers.add(n);
        totals.add(pool, prunedCount, relErr, le.expertsWithoutTokens(), removedBytes, s.compact());
        return widths;
    }

    /** Sum over tokens of ||Delta(t)||^2, Delta being minus the pruned micro-experts' contribution. */
    static double prunedDeltaSquared(Backend b, HostAllocator alloc, EnergyScorer scorer, LayerWeights weights,
                                     boolean[] pruned) {
        MoePool pool = scorer.pool();
        List<List<MoeOutputError.Term>> terms = new ArrayList<>();
        List<AutoCloseable> toClose = new ArrayList<>();
        try {
            for (int g = 0; g < pool.groupCount(); g++) {
                List<Integer> drop = new ArrayList<>();
                for (int j = 0; j < pool.groupWidth(g); j++) {
                    if (pruned[pool.groupOffset(g) + j]) {
                        drop.add(j);
                    }
                }
                if (drop.isEmpty()) {
                    terms.add(List.of());
                    continue;
                }
                Mlp mlp = pool.groupMlp(g);
                FloatTensor gate = rows(weights.get(mlp.gate()), drop, pool.hidden(), alloc);
                toClose.add(gate);
                FloatTensor up = rows(weights.get(mlp.up()), drop, pool.hidden(), alloc);
                toClose.add(up);
                FloatTensor down = columns(weights.get(mlp.down()), drop, pool.hidden(), pool.groupWidth(g), alloc);
                toClose.add(down);
                Tensor bg = b.upload(gate);
                toClose.add(bg);
                Tensor bu = b.upload(up);
                toClose.add(bu);
                Tensor bd = b.upload(down);
                toClose.add(bd);
                terms.add(List.of(new MoeOutputError.Term(bg, bu, bd, -1f)));
            }
            return MoeOutputError.deltaSquared(scorer, terms, b);
        } finally {
            for (int i = toClose.size() - 1; i >= 0; i--) {
                try {
                    toClose.get(i).close();
                } catch (Exception e) {
                    throw new IllegalStateException("releasing error-measurement tensors: " + e.getMessage(), e);
                }
            }
        }
    }

    /** Rows {@code idx} of a [*, hidden] matrix. */
    static FloatTensor rows(FloatTensor w, List<Integer> idx, int hidden, HostAllocator alloc) {
        FloatTensor out = alloc.allocate(Shape.of(idx.size(), hidden), "camera rows");
        for (int i = 0; i < idx.size(); i++) {
            out.copyFrom(w, (long) idx.get(i) * hidden, (long) i * hidden, hidden);
        }
        return out;
    }

    /** Columns {@code idx} of a [hidden, width] matrix. */
    static FloatTensor columns(FloatTensor w, List<Integer> idx, int hidden, int width, HostAllocator alloc) {
        FloatTensor out = alloc.allocate(Shape.of(hidden, idx.size()), "camera columns");
        float[] row = new float[width];
        float[] sel = new float[idx.size()];
        for (int r = 0; r < hidden; r++) {
            w.copyTo((long) r * width, row, 0, width);
            for (int i = 0; i < sel.length; i++) {
                sel[i] = row[idx.get(i)];
            }
            out.copyFrom(sel, 0, (long) r * sel.length, sel.length);
        }
        return out;
    }

    /** Zeroes rows {@code drop} of gate and up and columns {@code drop} of down, in place. */
    static void mask(LayerWeights weights, Mlp mlp, int hidden, int width, List<Integer> drop) {
        float[] zeros = new float[hidden];
        for (String name : List.of(mlp.gate(), mlp.up())) {
            FloatTensor w = weights.get(name);
            for (int j : drop) {
                w.copyFrom(zeros, 0, (long) j * hidden, hidden);
            }
            weights.markChanged(name);
        }
        FloatTensor down = weights.get(mlp.down());
        for (int r = 0; r < hidden; r++) {
            for (int j : drop) {
                down.set((long) r * width + j, 0f);
            }
        }
        weights.markChanged(mlp.down());
    }

    /** Replaces gate, up and down by their kept rows / columns (in their original order). */
    static void compact(LayerWeights weights, Mlp mlp, int hidden, List<Integer> keep, HostAllocator alloc) {
        int width = weights.get(mlp.gate()).rows();
        weights.replace(mlp.gate(), rows(weights.get(mlp.gate()), keep, hidden, alloc));
        weights.replace(mlp.up(), rows(weights.get(mlp.up()), keep, hidden, alloc));
        weights.replace(mlp.down(), columns(weights.get(mlp.down()), keep, hidden, width, alloc));
    }

    /** config.json with the expert (and shared) widths of a compact checkpoint. */
    static ObjectNode compactConfig(ModelSpec spec, UniformWidths w) {
        ObjectNode config = (ObjectNode) spec.config().deepCopy();
        if (w == null) {
            return config;
        }
        switch (spec.family()) {
            case MIXTRAL, OLMOE -> config.put("intermediate_size", w.expert()); // these families size experts by it
            case QWEN2_MOE -> {
                config.put("moe_intermediate_size", w.expert());
                if (spec.moe().hasSharedExpert()) {
                    config.put("shared_expert_intermediate_size", w.shared());
                }
            }
            case QWEN3_MOE, DEEPSEEK -> config.put("moe_intermediate_size", w.expert()); // DeepSeek shared = n_shared * it
            default -> throw new IllegalStateException("camera-p does not handle " + spec.modelType());
        }
        return config;
    }

    private static ObjectNode configChanges(ModelSpec spec, ObjectNode config) {
        ObjectNode changes = CameraReports.object();
        for (String key : List.of("intermediate_size", "moe_intermediate_size", "shared_expert_intermediate_size")) {
            var before = spec.config().get(key);
            var after = config.get(key);
            if (after != null && !after.equals(before)) {
                ObjectNode c = changes.putObject(key);
                c.set("before", before);
                c.set("after", after);
            }
        }
        return changes;
    }

    /** Sums over layers for the report. */
    private static final class Totals {
        long microExperts;
        long pruned;
        long removedParameters;
        long removedBytes;
        long prunedParameters;
        long expertsWithoutTokens;
        double sumRelErr;
        double maxRelErr;
        int layers;

        void add(MoePool pool, long prunedCount, double relErr, int noTokens, long bytes, boolean compact) {
            microExperts += pool.size();
            pruned += prunedCount;
            prunedParameters += 3L * pool.hidden() * prunedCount;
            if (compact) {
                removedParameters += 3L * pool.hidden() * prunedCount;
                removedBytes += bytes;
            }
            expertsWithoutTokens += noTokens;
            if (Double.isFinite(relErr)) {
                sumRelErr += relErr;
                maxRelErr = Math.max(maxRelErr, relErr);
            }
            layers++;
        }

        void write(ObjectNode n, JobContext ctx, Settings s) {
            long params = ctx.checkpoint().tensorNames().stream().mapToLong(x -> ctx.checkpoint().entry(x).numel()).sum();
            long bytes = ctx.checkpoint().totalBytes();
            n.put("moe_layers", layers);
            n.put("micro_experts", microExperts);
            n.put("pruned", pruned);
            n.put("parameters_before", params);
            n.put("parameters_after", params - removedParameters);
            n.put("nonzero_expert_parameters_removed", prunedParameters);
            n.put("effective_parameters_after", params - prunedParameters);
            n.put("bytes_before", bytes);
            n.put("bytes_after", bytes - removedBytes);
            n.put("experts_without_tokens", expertsWithoutTokens);
            n.put("mean_relative_error", layers == 0 ? 0 : sumRelErr / layers);
            n.put("max_relative_error", maxRelErr);
        }
    }
}
