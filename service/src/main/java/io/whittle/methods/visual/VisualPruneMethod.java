package io.whittle.methods.visual;

import io.whittle.compute.AttentionObserver;
import io.whittle.compute.Backend;
import io.whittle.forward.LayerObserver;
import io.whittle.forward.LayerWeights;
import io.whittle.forward.vision.ClipImageProcessor;
import io.whittle.forward.vision.ClipVisionTower;
import io.whittle.forward.vision.ImageEmbeddings;
import io.whittle.forward.vision.MultimodalSequence;
import io.whittle.forward.vision.VisualManifest;
import io.whittle.forward.vision.VisualPrefill;
import io.whittle.forward.vision.VisualPrefill.KeptHeads;
import io.whittle.forward.vision.VisualPrefill.State;
import io.whittle.forward.vision.VisualPrefill.VisualExecution;
import io.whittle.forward.vision.VisualPruning;
import io.whittle.methods.CompressionMethod;
import io.whittle.methods.InvalidParametersException;
import io.whittle.methods.InvalidParametersException.FieldError;
import io.whittle.methods.JobContext;
import io.whittle.methods.MethodDescriptor;
import io.whittle.methods.MethodParams;
import io.whittle.methods.ParamSpec;
import io.whittle.model.Checkpoint;
import io.whittle.model.ModelSpec;
import io.whittle.model.ModelSpec.Family;
import io.whittle.tensor.FloatTensor;
import io.whittle.tensor.HostAllocator;
import io.whittle.tensor.Tensor;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import tools.jackson.databind.node.ArrayNode;
import tools.jackson.databind.node.ObjectNode;

/**
 * {@code visual-prune}: YOPO's static visual-computation pruning for LLaVA ("Treat Visual Tokens as Text? But
 * Your MLLM Only Needs Fewer Efforts to See"). From image + prompt calibration samples it runs the dense model,
 * scores every head's attention to the image, votes the heads that keep visual work, and writes
 * {@code visual-plan.json} (window, drop layer, kept heads, alpha, mean ratios). It then runs the efficient
 * pruned prefill on the same samples and reports the visual-token FLOPs before and after, the kept-head table,
 * fidelity of the next-token distributions at the text positions (KL, top-1 agreement; pruned against dense)
 * and prefill time dense against pruned on the same backend. The model's weights are not changed.
 */
public final class VisualPruneMethod implements CompressionMethod {

    public static final String NAME = "visual-prune";

    private static final tools.jackson.databind.json.JsonMapper JSON = tools.jackson.databind.json.JsonMapper.builder().build();

    private static final MethodDescriptor DESCRIPTOR = new MethodDescriptor(NAME,
            "YOPO visual-token compute pruning for LLaVA: grid-window visual attention, non-active visual head dropping, "
                    + "visual layer drop; writes visual-plan.json and reports FLOPs, fidelity and prefill speed-up",
            List.of(
                    ParamSpec.integer("window", 5, null, null,
                            "w: a visual token attends to the visual tokens in the w x w grid neighbourhood (odd, >= 1) plus the prefix"),
                    ParamSpec.integer("keep_layers", 2, 0, null, "layers below this keep every head"),
                    ParamSpec.choice("score_rows", "text", List.of("text", "last"),
                            "attention rows scored: text = the text tokens after the image, last = the last prompt token"),
                    ParamSpec.number("alpha", 0.077, 0.0, false, null, false,
                            "a head keeps visual work when its visual/non-visual attention ratio exceeds alpha in more than 'vote' of the samples"),
                    ParamSpec.number("vote", 0.4, 0.0, false, 1.0, true, "fraction of samples a head must win"),
                    ParamSpec.number("heads_kept", null, 0.0, true, null, false,
                            "instead of alpha: the average number of kept heads per layer (over all layers) to reach"),
                    ParamSpec.integer("drop_layer", null, 0, null, "visual tokens are removed from this layer on (default: layers / 2)"),
                    ParamSpec.number("ffn_visual_fraction", 1.0, 0.0, true, 1.0, false,
                            "fraction of FFN neurons visual tokens use: accounted in the FLOPs only (the paper re-trains for it)"),
                    ParamSpec.integer("max_samples", 100, 1, null, "calibration samples used (the first ones of the manifest)"),
                    ParamSpec.integer("timing_samples", 4, 1, null, "samples whose dense and pruned prefill are timed"),
                    ParamSpec.bool("exact_fidelity", false,
                            "also report fidelity of the released code's masking semantics (post-softmax zeroing, dense cost)")),
            Set.of(Family.LLAVA), true, false);

    @Override
    public MethodDescriptor descriptor() {
        return DESCRIPTOR;
    }

    @Override
    public void check(MethodParams params, ModelSpec spec) {
        List<FieldError> errors = new ArrayList<>();
        int window = params.getInt("window");
        if (window < 1 || window % 2 == 0) {
            errors.add(new FieldError("params.window", "window must be an odd number >= 1 (a w x w neighbourhood centred on the token), got "
                    + window));
        }
        if (params.isSet("drop_layer") && params.getInt("drop_layer") > spec.numLayers()) {
            errors.add(new FieldError("params.drop_layer", "drop_layer " + params.getInt("drop_layer") + " is outside 0.."
                    + spec.numLayers()));
        }
        if (params.getInt("keep_layers") > spec.numLayers()) {
            errors.add(new FieldError("params.keep_layers", "keep_layers " + params.getInt("keep_layers") + " exceeds the "
                    + spec.numLayers() + " layers"));
        }
        if (params.isSet("heads_kept")) {
            if (params.getDouble("heads_kept") > spec.numHeads()) {
                errors.add(new FieldError("params.heads_kept", "heads_kept " + params.getDouble("heads_kept") + " exceeds the "
                        + spec.numHeads() + " heads per layer"));
            }
            if (params.isSet("alpha")) {
                errors.add(new FieldError("params.alpha", "give alpha or heads_kept, not both"));
            }
        }
        if (spec.qkNorm() != ModelSpec.QkNorm.NONE || spec.isMoeModel()) {
            errors.add(new FieldError("model", "visual-prune needs a Llama language model"));
        }
        if (!errors.isEmpty()) {
            throw new InvalidParametersException(NAME, errors);
        }
    }

    /** One calibration sample ready for the language model. */
    record Sample(MultimodalSequence sequence, FloatTensor imageEmbeds, int[] scoreRows) {
    }

    @Override
    public void run(JobContext ctx) throws Exception {
        MethodParams p = ctx.params();
        ModelSpec spec = ctx.spec();
        Checkpoint ck = ctx.checkpoint();
        Backend b = ctx.backend();
        HostAllocator alloc = ctx.allocator();
        int layers = spec.numLayers();
        int window = p.getInt("window");
        int drop = p.isSet("drop_layer") ? p.getInt("drop_layer") : layers / 2;
        int keepLayers = p.getInt("keep_layers");
        String scoreRows = p.getString("score_rows");
        double vote = p.getDouble("vote");

        long t = System.nanoTime();
        ctx.progress().update("vision", -1, layers, 0.0);
        VisualManifest manifest = VisualManifest.load(ctx.request().calibration());
        ClipVisionTower tower = new ClipVisionTower(spec, ck);
        ClipImageProcessor processor = ClipImageProcessor.forModel(ctx.modelDirectory(), tower.imageSize());
        int imageToken = manifest.imageTokenId() != null ? manifest.imageTokenId() : spec.imageTokenId();
        int count = Math.min(p.getInt("max_samples"), manifest.samples().size());
        List<Sample> samples = new ArrayList<>();
        try {
            for (int i = 0; i < count; i++) {
                ctx.checkCancelled();
                VisualManifest.Sample ms = manifest.samples().get(i);
                MultimodalSequence seq = MultimodalSequence.expand(ms.inputIds(), ms.answerIds(), imageToken, tower.gridSize(),
                        tower.gridSize(), "manifest " + manifest.file() + ", " + ms.where());
                for (int r = 0; r < seq.length(); r++) {
                    int id = seq.tokens()[r];
                    if (id >= spec.vocabSize() && !(r >= seq.prefix() && r < seq.textStart())) {
                        throw new IllegalArgumentException("manifest " + manifest.file() + ", " + ms.where() + ": token id " + id
                                + " is outside the model's vocabulary [0, " + spec.vocabSize() + ")");
                    }
                }
                int[] rows = scoreRows(seq, scoreRows, "manifest " + manifest.file() + ", " + ms.where());
                samples.add(new Sample(seq, ImageEmbeddings.of(ms, tower, processor, spec.hiddenSize(), b, alloc), rows));
                ctx.progress().update("vision", -1, layers, (double) (i + 1) / count);
            }
            ctx.addStageSeconds("vision", seconds(t));
            runOnSamples(ctx, samples, window, drop, keepLayers, scoreRows, vote);
        } finally {
            samples.forEach(s -> s.imageEmbeds().close());
        }
    }

    static int[] scoreRows(MultimodalSequence seq, String mode, String where) {
        if (mode.equals("last")) {
            int last = seq.promptLength() - 1;
            if (last < seq.textStart()) {
                throw new IllegalArgumentException(where + ": score_rows=last needs a prompt token after the image");
            }
            return new int[] {last};
        }
        if (seq.textStart() >= seq.length()) {
            throw new IllegalArgumentException(where + ": score_rows=text needs text after the image (the image ends the sequence)");
        }
        return java.util.stream.IntStream.range(seq.textStart(), seq.length()).toArray();
    }

    private void runOnSamples(JobContext ctx, List<Sample> samples, int window, int drop, int keepLayers, String scoreRowsMode,
                              double vote) {
        MethodParams p = ctx.params();
        ModelSpec spec = ctx.spec();
        Checkpoint ck = ctx.checkpoint();
        Backend b = ctx.backend();
        HostAllocator alloc = ctx.allocator();
        int layers = spec.numLayers(), heads = spec.numHeads(), n = samples.size();

        // 1. dense pass with attention statistics: ratios[s][l][h]
        long t = System.nanoTime();
        double[][][] ratios = new double[n][layers][heads];
        List<FloatTensor> denseText = new ArrayList<>();
        List<State> states = new ArrayList<>();
        try {
            for (Sample s : samples) {
                states.add(VisualPrefill.start(b, spec, ck, s.sequence(), s.imageEmbeds(), alloc));
            }
            for (int l = 0; l < layers; l++) {
                ctx.checkCancelled();
                ctx.progress().update("calibrate", l, layers, (double) l / layers);
                try (LayerWeights w = LayerWeights.load(ck, l, spec.layer(l).allTensors(), alloc)) {
                    for (int s = 0; s < n; s++) {
                        VisualPrefill.denseLayer(b, spec, l, w, states.get(s), ratioObserver(samples.get(s), ratios[s][l]));
                    }
                }
            }
            for (State s : states) {
                denseText.add(s.textHidden(alloc));
            }
        } finally {
            states.forEach(State::close);
            states.clear();
        }
        ctx.addStageSeconds("calibrate", seconds(t));

        // 2. head selection
        t = System.nanoTime();
        Double target = p.isSet("heads_kept") ? p.getDouble("heads_kept") : null;
        double alpha = target != null ? HeadSelection.alphaFor(ratios, vote, keepLayers, target) : p.getDouble("alpha");
        boolean[][] keep = HeadSelection.vote(ratios, alpha, vote, keepLayers);
        VisualFlops.Dims dims = VisualFlops.Dims.of(spec);
        VisualPlan plan = new VisualPlan(layers, heads, dims.gridRows(), dims.gridCols(), window, drop, keepLayers, alpha, vote,
                scoreRowsMode, target, keep, HeadSelection.meanRatios(ratios), p.getDouble("ffn_visual_fraction"));
        ctx.output().writeJson("visual-plan.json", plan.toJson());
        ctx.addStageSeconds("select", seconds(t));

        // 3. pruned prefill (efficient) on every sample; dense and pruned timed side by side on the timing samples
        int timed = Math.min(p.getInt("timing_samples"), n);
        double[] denseSeconds = new double[timed], prunedSeconds = new double[timed];
        List<FloatTensor> prunedText = runPruned(ctx, samples, plan.pruning(), VisualExecution.EFFICIENT, timed, denseSeconds,
                prunedSeconds, "prune");
        List<FloatTensor> exactText = p.getBoolean("exact_fidelity")
                ? runPruned(ctx, samples, plan.pruning(), VisualExecution.EXACT, 0, null, null, "exact") : null;

        // 4. fidelity at the text positions
        t = System.nanoTime();
        ObjectNode report = ctx.report();
        try {
            report.set("visual_flops", flops(spec, dims, plan).toJson());
            report.set("kept_heads", keptTable(plan, spec));
            ObjectNode fid = fidelity(b, spec, ck, alloc, denseText, prunedText);
            fid.put("execution", "efficient");
            if (exactText != null) {
                ObjectNode ex = fidelity(b, spec, ck, alloc, denseText, exactText);
                ex.put("execution", "exact (released code: post-softmax zeroing, no renormalisation)");
                fid.set("exact", ex);
            }
            report.set("fidelity", fid);
        } finally {
            denseText.forEach(FloatTensor::close);
            prunedText.forEach(FloatTensor::close);
            if (exactText != null) {
                exactText.forEach(FloatTensor::close);
            }
        }
        ctx.addStageSeconds("fidelity", seconds(t));
        ObjectNode prefill = report.putObject("prefill");
        double dSum = java.util.Arrays.stream(denseSeconds).sum(), pSum = java.util.Arrays.stream(prunedSeconds).sum();
        prefill.put("backend", b.name());
        prefill.put("samples", timed);
        prefill.put("tokens_per_sample", samples.get(0).sequence().length());
        prefill.put("dense_seconds", dSum);
        prefill.put("pruned_seconds", pSum);
        prefill.put("speedup", dSum / pSum);
        prefill.put("what", "sum over the timed samples of the decoder layers' compute (weights already loaded; the kept-head "
                + "weight slices are prepared once per layer, reported as timings.prepare)");
        ObjectNode cal = report.putObject("calibration_samples");
        cal.put("used", n);
        cal.put("score_rows", scoreRowsMode);
        cal.put("visual_tokens", samples.get(0).sequence().visual());
    }

    /** Accumulates one sample's visual and non-visual attention mass over its score rows, per head. */
    private static LayerObserver ratioObserver(Sample sample, double[] ratioOut) {
        MultimodalSequence seq = sample.sequence();
        int p = seq.prefix(), ve = seq.textStart();
        double[] visual = new double[ratioOut.length], other = new double[ratioOut.length];
        AttentionObserver att = new AttentionObserver() {
            @Override
            public boolean wantsProbabilities() {
                return true;
            }

            @Override
            public void probabilities(int sequence, int head, int length, float[] probs) {
                double v = 0, o = 0;
                for (int row : sample.scoreRows()) {
                    int base = row * length;
                    for (int j = 0; j <= row; j++) {
                        if (j >= p && j < ve) {
                            v += probs[base + j];
                        } else {
                            o += probs[base + j];
                        }
                    }
                }
                visual[head] += v;
                other[head] += o;
                // a head whose score rows put no mass outside the image (possible only by fp32 underflow) gets a
                // large finite ratio, so the plan stays valid JSON
                ratioOut[head] = other[head] > 0 ? visual[head] / other[head] : (visual[head] > 0 ? 1e30 : 0);
            }
        };
        return new LayerObserver() {
            @Override
            public AttentionObserver attention() {
                return att;
            }
        };
    }

    private static List<FloatTensor> runPruned(JobContext ctx, List<Sample> samples, VisualPruning plan, VisualExecution mode,
                                               int timed, double[] denseSeconds, double[] prunedSeconds, String stage) {
        ModelSpec spec = ctx.spec();
        Checkpoint ck = ctx.checkpoint();
        Backend b = ctx.backend();
        HostAllocator alloc = ctx.allocator();
        int layers = spec.numLayers();
        long t0 = System.nanoTime();
        double prepare = 0;
        List<State> pruned = new ArrayList<>(), dense = new ArrayList<>();
        List<FloatTensor> out = new ArrayList<>();
        try {
            for (int s = 0; s < samples.size(); s++) {
                pruned.add(VisualPrefill.start(b, spec, ck, samples.get(s).sequence(), samples.get(s).imageEmbeds(), alloc));
                if (s < timed) {
                    dense.add(VisualPrefill.start(b, spec, ck, samples.get(s).sequence(), samples.get(s).imageEmbeds(), alloc));
                }
            }
            for (int l = 0; l < layers; l++) {
                ctx.checkCancelled();
                ctx.progress().update(stage, l, layers, (double) l / layers);
                try (LayerWeights w = LayerWeights.load(ck, l, spec.layer(l).allTensors(), alloc)) {
                    long tp = System.nanoTime();
                    boolean sliced = mode == VisualExecution.EFFICIENT && l < plan.dropLayer();
                    try (KeptHeads kept = sliced ? VisualPrefill.keptHeads(b, spec, w, plan.activeHeads(l), alloc) : null) {
                        prepare += seconds(tp);
                        for (int s = 0; s < samples.size(); s++) {
                            if (s < timed) {
                                long td = System.nanoTime();
                                VisualPrefill.denseLayer(b, spec, l, w, dense.get(s), null);
                                denseSeconds[s] += seconds(td);
                            }
                            long tq = System.nanoTime();
                            VisualPrefill.prunedLayer(b, spec, l, w, kept, pruned.get(s), mode, plan);
                            if (s < timed) {
                                prunedSeconds[s] += seconds(tq);
                            }
                        }
                    }
                }
            }
            for (State s : pruned) {
                out.add(s.textHidden(alloc));
            }
        } catch (RuntimeException e) {
            out.forEach(FloatTensor::close);
            throw e;
        } finally {
            pruned.forEach(State::close);
            dense.forEach(State::close);
        }
        ctx.addStageSeconds(stage, seconds(t0) - prepare);
        if (prepare > 0) {
            ctx.addStageSeconds("prepare", prepare);
        }
        return out;
    }

    static VisualFlops.Result flops(ModelSpec spec, VisualFlops.Dims dims, VisualPlan plan) {
        double[][] c = VisualFlops.counts(plan.keepHeads(), spec.numHeads(), spec.numKvHeads());
        return VisualFlops.compute(dims, plan.window(), plan.dropLayer(), c[0], c[1], plan.ffnVisualFraction());
    }

    private static ObjectNode keptTable(VisualPlan plan, ModelSpec spec) {
        ObjectNode n = JSON.createObjectNode();
        ArrayNode perLayer = n.putArray("per_layer");
        ArrayNode counts = n.putArray("count_per_layer");
        ArrayNode active = n.putArray("active_count_per_layer");
        for (int l = 0; l < plan.layers(); l++) {
            ArrayNode a = perLayer.addArray();
            int[] idx = VisualPlan.indices(plan.keepHeads()[l]);
            for (int h : idx) {
                a.add(h);
            }
            counts.add(idx.length);
            active.add(l < plan.dropLayer() ? idx.length : 0);
        }
        n.put("average", plan.averageKeptHeads());
        n.put("heads_per_layer", spec.numHeads());
        n.put("alpha", plan.alpha());
        n.put("vote", plan.vote());
        n.put("drop_layer", plan.dropLayer());
        return n;
    }

    /** KL(dense || pruned) and top-1 agreement of the next-token distributions at every text row after the image. */
    private static ObjectNode fidelity(Backend b, ModelSpec spec, Checkpoint ck, HostAllocator alloc, List<FloatTensor> dense,
                                       List<FloatTensor> pruned) {
        double klSum = 0, klMax = 0;
        long positions = 0, agree = 0;
        try (FloatTensor normHost = ck.readFloat(spec.finalNorm(), alloc);
             FloatTensor headHost = ck.readFloat(spec.lmHead(), alloc);
             Tensor norm = b.upload(normHost);
             Tensor head = b.upload(headHost)) {
            for (int s = 0; s < dense.size(); s++) {
                double[][] pd = VisualPrefill.logProbs(b, spec, norm, head, dense.get(s));
                double[][] pp = VisualPrefill.logProbs(b, spec, norm, head, pruned.get(s));
                for (int r = 0; r < pd.length; r++) {
                    double kl = 0;
                    int ad = 0, ap = 0;
                    for (int j = 0; j < pd[r].length; j++) {
                        double lp = pd[r][j];
                        kl += Math.exp(lp) * (lp - pp[r][j]);
                        if (pd[r][j] > pd[r][ad]) {
                            ad = j;
                        }
                        if (pp[r][j] > pp[r][ap]) {
                            ap = j;
                        }
                    }
                    kl = Math.max(0, kl);
                    klSum += kl;
                    klMax = Math.max(klMax, kl);
                    positions++;
                    agree += ad == ap ? 1 : 0;
                }
            }
        }
        ObjectNode n = JSON.createObjectNode();
        n.put("samples", dense.size());
        n.put("positions", positions);
        n.put("kl_mean", klSum / positions);
        n.put("kl_max", klMax);
        n.put("top1_agreement", (double) agree / positions);
        n.put("what", "next-token distributions at the text rows after the image, pruned versus dense; KL(dense || pruned) in nats");
        return n;
    }

    private static double seconds(long t) {
        return (System.nanoTime() - t) / 1e9;
    }
}
