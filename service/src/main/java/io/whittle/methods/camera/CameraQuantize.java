package io.whittle.methods.camera;

import io.whittle.compute.Backend;
import io.whittle.compute.Routing;
import io.whittle.forward.LayerObserver;
import io.whittle.forward.LayerVisitor;
import io.whittle.forward.LayerWeights;
import io.whittle.methods.CompressionMethod;
import io.whittle.methods.JobContext;
import io.whittle.methods.MethodDescriptor;
import io.whittle.methods.MethodParams;
import io.whittle.methods.ParamSpec;
import io.whittle.methods.camera.quant.BitBudget;
import io.whittle.methods.camera.quant.CameraQOptions;
import io.whittle.methods.camera.quant.CompressedTensorsExport;
import io.whittle.methods.camera.quant.GptqQuantizer;
import io.whittle.methods.camera.quant.GptqResult;
import io.whittle.methods.camera.quant.Hessian;
import io.whittle.methods.camera.quant.InverseHessian;
import io.whittle.methods.camera.quant.MicroExpertPermutation;
import io.whittle.methods.camera.quant.PackedFormat;
import io.whittle.methods.camera.quant.QuantLayout;
import io.whittle.methods.camera.quant.QuantizedExpert;
import io.whittle.methods.camera.quant.QuantizedMatrix;
import io.whittle.methods.camera.quant.RtnQuantizer;
import io.whittle.methods.camera.quant.ScaleFormat;
import io.whittle.model.Checkpoint;
import io.whittle.model.CheckpointWriter;
import io.whittle.model.ModelSpec;
import io.whittle.model.ModelSpec.LayerNames;
import io.whittle.model.ModelSpec.Mlp;
import io.whittle.model.safetensors.TensorSource;
import io.whittle.tensor.DType;
import io.whittle.tensor.FloatTensor;
import io.whittle.tensor.HostAllocator;
import io.whittle.tensor.Shape;
import io.whittle.tensor.Tensor;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import tools.jackson.databind.node.ArrayNode;
import tools.jackson.databind.node.ObjectNode;

/**
 * {@code camera-q}: CAMERA's mixed-precision quantization. Per MoE layer every micro-expert gets a bit width by its
 * energy rank in the layer ({@code bits} at {@code fractions}, highest energies the most bits); inside each expert
 * the micro-experts are reordered by bit class (the permutation is stored) so that no quantization group mixes
 * widths; W_gate/W_up rows and W_down column slices are then quantized with GPTQ (Hessians from the tokens routed
 * to that expert and from its intermediate activations) or RTN, scales and zeros fp16. Experts without tokens fall
 * back to RTN. Outputs: {@code packed} (whittle-packed-v1), {@code dequantized} (bf16, input names and shapes) or,
 * for a single width, {@code compressed-tensors} (pack-quantized, loadable by vLLM). Only expert projections
 * (routed and shared) are quantized; attention, routers, shared_expert_gate, dense MLPs, norms, embeddings and
 * lm_head are copied unchanged.
 */
public final class CameraQuantize implements CompressionMethod {

    public static final String NAME = "camera-q";

    private static final List<String> OPTION_PARAMS = List.of("bits", "fractions", "group_size", "quantizer", "damp", "sym", "export");

    private static final MethodDescriptor DESCRIPTOR = new MethodDescriptor(NAME,
            "CAMERA-Q: mixed-precision quantization of micro-experts by energy rank (GPTQ or RTN)",
            List.of(
                    ParamSpec.integerList("bits", List.of(3, 2, 1), 1, 8, "bit widths, paired with fractions"),
                    ParamSpec.numberList("fractions", List.of(0.125, 0.75, 0.125), 0.0, 1.0,
                            "fraction of each layer's micro-experts at each width (sum 1; the highest energies get the most "
                                    + "bits); defaults to 1 when bits names a single width"),
                    ParamSpec.integer("group_size", 128, 1, null, "quantization group length along the input dimension"),
                    ParamSpec.choice("quantizer", "gptq", List.of("gptq", "rtn"), "GPTQ (Hessians from routed tokens) or RTN"),
                    ParamSpec.number("damp", 0.01, 0.0, false, 1.0, false, "GPTQ dampening, fraction of mean(diag H)"),
                    ParamSpec.bool("sym", false, "symmetric quantization (no zero points)"),
                    ParamSpec.choice("export", "packed", List.of("packed", "dequantized", "compressed-tensors"),
                            "packed: whittle-packed-v1; dequantized: the bf16 checkpoint it decodes to; compressed-tensors: "
                                    + "pack-quantized for vLLM (one width only)"),
                    CameraParams.ALPHA,
                    CameraParams.MODE),
            CameraParams.FAMILIES, true, true);

    @Override
    public MethodDescriptor descriptor() {
        return DESCRIPTOR;
    }

    /** The quantization options from the parameters the user gave (so that {@code bits=4} alone means fractions 1). */
    static CameraQOptions options(MethodParams p) {
        Map<String, String> given = new LinkedHashMap<>();
        for (String name : OPTION_PARAMS) {
            if (p.isSet(name)) {
                Object v = p.get(name);
                given.put(name, v instanceof List<?> l ? String.join(",", l.stream().map(String::valueOf).toList()) : String.valueOf(v));
            }
        }
        try {
            return CameraQOptions.parse(given);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(NAME + ": " + e.getMessage(), e);
        }
    }

    @Override
    public void check(MethodParams params, ModelSpec spec) {
        CameraParams.requireMoe(NAME, spec);
        CameraQOptions o = options(params);
        try {
            if (spec.moe().hasSharedExpert()) {
                o.requireCompatible(spec.hiddenSize(), spec.moe().expertIntermediate(), spec.moe().sharedIntermediate());
            } else {
                o.requireCompatible(spec.hiddenSize(), spec.moe().expertIntermediate());
            }
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(NAME + ": " + e.getMessage(), e);
        }
    }

    /** Module name of a projection inside its expert: {@code gate_proj}, {@code w1}, ... */
    static String projection(String weightName) {
        String module = weightName.substring(0, weightName.length() - ".weight".length());
        return module.substring(module.lastIndexOf('.') + 1);
    }

    /** The expert's module prefix: {@code model.layers.3.mlp.experts.17}. */
    static String expertPrefix(String weightName) {
        String module = weightName.substring(0, weightName.length() - ".weight".length());
        return module.substring(0, module.lastIndexOf('.'));
    }

    @Override
    public void run(JobContext ctx) {
        ModelSpec spec = ctx.spec();
        CameraQOptions o = options(ctx.params());
        double alpha = ctx.params().getDouble("alpha");
        ObjectNode result = ctx.report();
        result.put("alpha", alpha);
        result.put("mode", ctx.params().getString("mode"));
        ArrayNode bitsNode = result.putArray("bits");
        Arrays.stream(o.allocation().bits()).forEach(bitsNode::add);
        ArrayNode fracNode = result.putArray("fractions");
        Arrays.stream(o.allocation().fractions()).forEach(fracNode::add);
        result.put("group_size", o.groupSize());
        result.put("quantizer", o.quantizer().wireName());
        result.put("damp", o.damp());
        result.put("symmetric", o.symmetric());
        result.put("export", o.export().wireName());
        result.put("nominal_bpw", BitBudget.nominalTotal(o.allocation(), o.groupSize(), o.symmetric()));
        result.put("nominal_arithmetic", BitBudget.arithmetic(o.allocation(), o.groupSize(), o.symmetric()));
        result.put("pool_order", "shared channels, then expert 0 channels 0..f-1, expert 1, ...");
        result.put("routing_weights", RoutingNote.TEXT);
        result.put("quantized", "routed and shared expert projections only; attention, routers, shared_expert_gate, dense "
                + "MLPs, norms, embeddings and lm_head are copied unchanged");
        ArrayNode layers = result.putArray("layers");
        boolean twin = ctx.request().eval() != null && o.export() != CameraQOptions.Export.DEQUANTIZED;
        BitBudget total = new BitBudget();
        long[] bytesAfter = new long[1];
        int[] fallbacks = new int[2]; // [gptq fallbacks, experts without tokens]
        try (QuantVisitor visitor = new QuantVisitor(ctx, spec, o, alpha, twin, layers, total, bytesAfter, fallbacks)) {
            ctx.runPipeline(NAME, visitor, CameraParams.mode(ctx.params()));
        }
        long t = System.nanoTime();
        ctx.writeNonLayerTensorsAndFiles();
        Checkpoint in = ctx.checkpoint();
        String layerPrefix = spec.decoderPrefix() + "layers.";
        for (String name : in.tensorNames()) {
            if (!name.startsWith(layerPrefix)) {
                bytesAfter[0] += in.entry(name).byteLength();
            }
        }
        if (o.export() == CameraQOptions.Export.COMPRESSED_TENSORS) {
            ObjectNode config = (ObjectNode) spec.config().deepCopy();
            DType wdt = in.entry(spec.layer(spec.moeLayers().iterator().next()).moe().experts().get(0).gate()).dtype();
            config.set("quantization_config", CompressedTensorsExport.quantizationConfig(o.uniformScheme(wdt), wdt,
                    List.of("Linear"), unquantizedLinears(spec)));
            ctx.output().writeJson("config.json", config);
        }
        if (twin) {
            CheckpointWriter w = ctx.evaluationTwin();
            List<TensorSource> rest = new ArrayList<>();
            for (String name : in.tensorNames()) {
                if (!name.startsWith(layerPrefix)) {
                    rest.add(in.copyOf(name));
                }
            }
            w.writeTensors(rest);
            for (Path p : in.auxiliaryFiles()) {
                w.copyFile(p);
            }
        }
        ctx.addStageSeconds("camera.write", (System.nanoTime() - t) / 1e9);
        ObjectNode totals = result.putObject("totals");
        long params = in.tensorNames().stream().mapToLong(n -> in.entry(n).numel()).sum();
        totals.put("moe_layers", layers.size());
        totals.put("micro_experts", (long) layers.size() * spec.moeChannelsPerLayer());
        totals.put("parameters", params);
        totals.put("quantized_weights", total.weights());
        totals.put("bytes_before", in.totalBytes());
        totals.put("bytes_after", bytesAfter[0]);
        ObjectNode achieved = totals.putObject("achieved_bpw");
        CameraReports.putAll(achieved, total.report());
        achieved.put("storage", o.export() == CameraQOptions.Export.COMPRESSED_TENSORS ? "compressed-tensors" : "whittle-packed-v1");
        totals.put("gptq_fallbacks", fallbacks[0]);
        totals.put("experts_without_tokens", fallbacks[1]);
        double sum = 0, max = 0;
        for (var l : layers) {
            double e = l.get("relative_error").asDouble();
            sum += e;
            max = Math.max(max, e);
        }
        totals.put("mean_relative_error", layers.isEmpty() ? 0 : sum / layers.size());
        totals.put("max_relative_error", max);
    }

    /** Module names of every Linear the export leaves in the model dtype (the quantization_config's ignore). */
    static List<String> unquantizedLinears(ModelSpec spec) {
        List<String> out = new ArrayList<>();
        for (int l = 0; l < spec.numLayers(); l++) {
            LayerNames n = spec.layer(l);
            for (String w : new String[] {n.q(), n.k(), n.v(), n.o()}) {
                out.add(module(w));
            }
            if (n.isMoe()) {
                out.add(module(n.moe().router()));
                if (n.moe().sharedGate() != null) {
                    out.add(module(n.moe().sharedGate()));
                }
            } else {
                n.dense().all().forEach(w -> out.add(module(w)));
            }
        }
        out.add(module(spec.lmHead()));
        return out;
    }

    private static String module(String weightName) {
        return weightName.substring(0, weightName.length() - ".weight".length());
    }

    /** One quantized expert (or shared expert) of the current layer. */
    private record QuantGroup(Mlp mlp, QuantizedExpert expert) {
    }

    /** Scores each MoE layer during its forward, then quantizes it and writes it in the chosen format. */
    private static final class QuantVisitor implements LayerVisitor, AutoCloseable {
        private final JobContext ctx;
        private final ModelSpec spec;
        private final CameraQOptions options;
        private final double alpha;
        private final boolean twin;
        private final ArrayNode layers;
        private final BitBudget total;
        private final long[] bytesAfter;
        private final int[] fallbacks;
        private EnergyScorer scorer;
        private List<QuantGroup> quantized;

        QuantVisitor(JobContext ctx, ModelSpec spec, CameraQOptions options, double alpha, boolean twin, ArrayNode layers,
                     BitBudget total, long[] bytesAfter, int[] fallbacks) {
            this.ctx = ctx;
            this.spec = spec;
            this.options = options;
            this.alpha = alpha;
            this.twin = twin;
            this.layers = layers;
            this.total = total;
            this.bytesAfter = bytesAfter;
            this.fallbacks = fallbacks;
        }

        @Override
        public LayerObserver observer(LayerWeights weights) {
            quantized = null;
            scorer = EnergyScorer.forLayer(ctx, weights, ctx.calibration().totalTokens());
            return scorer;
        }

        @Override
        public void compress(LayerWeights weights) {
            if (scorer == null) {
                return;
            }
            try {
                quantized = quantizeLayer(weights);
            } finally {
                close();
            }
        }

        @Override
        public void layerDone(LayerWeights weights) {
            long t = System.nanoTime();
            if (quantized == null || options.export() == CameraQOptions.Export.DEQUANTIZED) {
                ctx.writeLayer(weights);
                for (String name : weights.names()) {
                    bytesAfter[0] += weights.changed().contains(name) ? weights.get(name).numel() * weights.dtype(name).byteSize()
                            : ctx.checkpoint().entry(name).byteLength();
                }
            } else {
                Set<String> replaced = new HashSet<>();
                List<TensorSource> group = new ArrayList<>();
                for (QuantGroup q : quantized) {
                    replaced.addAll(q.mlp().all());
                    String prefix = expertPrefix(q.mlp().gate());
                    if (options.export() == CameraQOptions.Export.PACKED) {
                        group.addAll(PackedFormat.write(prefix, q.expert()));
                    } else {
                        q.expert().rowProjections().forEach((proj, m) -> group.addAll(CompressedTensorsExport.tensors(prefix + "." + proj, m)));
                        q.expert().columnProjections().forEach((proj, m) -> group.addAll(CompressedTensorsExport.tensors(prefix + "." + proj, m)));
                    }
                }
                group.addAll(unchangedTensors(weights, replaced));
                for (TensorSource s : group) {
                    bytesAfter[0] += s.byteLength();
                }
                if (options.export() == CameraQOptions.Export.PACKED) {
                    List<String> rows = List.of(projection(quantized.get(0).mlp().gate()), projection(quantized.get(0).mlp().up()));
                    ctx.output().writeTensors(group, PackedFormat.metadata(options.groupSize(), options.symmetric(),
                            options.allocation(), options.quantizer().wireName(), rows,
                            List.of(projection(quantized.get(0).mlp().down()))));
                } else {
                    ctx.output().writeTensors(group);
                }
            }
            if (twin) {
                // exactly the weights the output decodes to (fp32 where quantized), readable by the engine
                List<TensorSource> group = unchangedTensors(weights, weights.changed());
                for (String name : weights.changed()) {
                    group.add(TensorSource.ofFloat(name, DType.F32, weights.get(name)));
                }
                ctx.evaluationTwin().writeTensors(group);
            }
            quantized = null;
            ctx.addStageSeconds("camera.write", (System.nanoTime() - t) / 1e9);
        }

        /** Every tensor of the layer's checkpoint prefix except {@code except}, copied byte for byte. */
        private List<TensorSource> unchangedTensors(LayerWeights weights, Set<String> except) {
            List<TensorSource> out = new ArrayList<>();
            String prefix = spec.decoderPrefix() + "layers." + weights.layer() + ".";
            for (String name : ctx.checkpoint().tensorNames()) {
                if (name.startsWith(prefix) && !except.contains(name)) {
                    out.add(ctx.checkpoint().copyOf(name));
                }
            }
            return out;
        }

        private List<QuantGroup> quantizeLayer(LayerWeights weights) {
            MoePool pool = scorer.pool();
            HostAllocator alloc = ctx.allocator();
            Backend backend = ctx.backend();
            long t0 = System.nanoTime();
            LayerEnergy le = scorer.result();
            double[] energy = le.energy(alpha);
            float[] energyF = new float[energy.length];
            for (int j = 0; j < energy.length; j++) {
                energyF[j] = (float) energy[j];
            }
            int[] bits = options.allocation().assign(energyF);
            DType wdt = weights.dtype(pool.groupMlp(0).gate());
            ScaleFormat scales = options.scaleFormat(wdt);
            BitBudget.Storage storage = options.export() == CameraQOptions.Export.COMPRESSED_TENSORS
                    ? BitBudget.Storage.COMPRESSED_TENSORS : BitBudget.Storage.WHITTLE_PACKED;
            BitBudget budget = new BitBudget();
            List<QuantGroup> groups = new ArrayList<>();
            List<Map<String, FloatTensor>> decoded = new ArrayList<>();
            int layerFallbacks = 0;
            Map<String, Integer> reasons = new TreeMap<>();
            long quantNanos = 0;
            try {
                for (int g = 0; g < pool.groupCount(); g++) {
                    long tq = System.nanoTime();
                    Mlp mlp = pool.groupMlp(g);
                    int width = pool.groupWidth(g);
                    MicroExpertPermutation perm = MicroExpertPermutation.byBits(
                            Arrays.copyOfRange(bits, pool.groupOffset(g), pool.groupOffset(g) + width));
                    QuantLayout rowLayout = perm.rowLayout(pool.hidden(), options.groupSize(), options.symmetric(), scales);
                    QuantLayout colLayout = perm.columnLayout(pool.hidden(), options.groupSize(), options.symmetric(), scales);
                    QuantizedMatrix qg, qu, qd;
                    try (FloatTensor gate = perm.permuteRows(weights.get(mlp.gate()), alloc);
                         FloatTensor up = perm.permuteRows(weights.get(mlp.up()), alloc);
                         FloatTensor down = perm.permuteColumns(weights.get(mlp.down()), alloc)) {
                        if (options.quantizer() == CameraQOptions.Quantizer.RTN) {
                            qg = RtnQuantizer.quantize(gate, rowLayout);
                            qu = RtnQuantizer.quantize(up, rowLayout);
                            qd = RtnQuantizer.quantize(down, colLayout);
                        } else {
                            GptqQuantizer gptq = new GptqQuantizer(options.damp(), GptqQuantizer.DEFAULT_BLOCK_SIZE, alloc);
                            try (Hessian hx = new Hessian(pool.hidden(), alloc);
                                 Hessian hh = new Hessian(width, alloc)) {
                                accumulateHessians(backend, pool, g, gate, up, hx, hh);
                                GptqResult rg, ru, rd;
                                try (InverseHessian inv = gptq.factor(hx)) {
                                    rg = gptq.quantize(gate, rowLayout, inv);
                                    ru = gptq.quantize(up, rowLayout, inv);
                                }
                                rd = gptq.quantize(down, colLayout, hh);
                                for (GptqResult r : List.of(rg, ru, rd)) {
                                    if (r.usedFallback()) {
                                        reasons.merge(r.fallbackReason(), 1, Integer::sum);
                                    }
                                }
                                if (rg.usedFallback() || rd.usedFallback()) {
                                    layerFallbacks++;
                                }
                                qg = rg.matrix();
                                qu = ru.matrix();
                                qd = rd.matrix();
                            }
                        }
                    }
                    Map<String, QuantizedMatrix> rows = new LinkedHashMap<>();
                    rows.put(projection(mlp.gate()), qg);
                    rows.put(projection(mlp.up()), qu);
                    QuantizedExpert expert = new QuantizedExpert(perm, rows, Map.of(projection(mlp.down()), qd));
                    for (BitBudget b : List.of(budget, total)) {
                        for (QuantizedMatrix m : List.of(qg, qu, qd)) {
                            b.add(m, storage);
                        }
                        if (storage == BitBudget.Storage.WHITTLE_PACKED) {
                            // camera_perm [f], camera_slice_bits [S], camera_slice_offsets [S + 1], all int32
                            b.addIndexBits(32L * (width + 2L * perm.sliceBits().length + 1));
                        }
                    }
                    groups.add(new QuantGroup(mlp, expert));
                    decoded.add(expert.dequantize(alloc));
                    quantNanos += System.nanoTime() - tq;
                }
                long t1 = System.nanoTime();
                double deltaSq = quantizedDeltaSquared(backend, pool, weights, groups, decoded);
                double relErr = MoeOutputError.relative(deltaSq, scorer.denseOutputSquared());
                long t2 = System.nanoTime();
                for (int g = 0; g < groups.size(); g++) {
                    Mlp mlp = groups.get(g).mlp();
                    Map<String, FloatTensor> d = decoded.get(g);
                    weights.replace(mlp.gate(), d.remove(projection(mlp.gate())));
                    weights.replace(mlp.up(), d.remove(projection(mlp.up())));
                    weights.replace(mlp.down(), d.remove(projection(mlp.down())));
                }
                ctx.addStageSeconds("camera.score", scorer.seconds());
                ctx.addStageSeconds("camera.quantize", quantNanos / 1e9);
                ctx.addStageSeconds("camera.error", (t2 - t1) / 1e9);
                fallbacks[0] += layerFallbacks;
                fallbacks[1] += le.expertsWithoutTokens();
                layers.add(layerReport(le, energy, bits, groups, budget, relErr, layerFallbacks, reasons,
                        (System.nanoTime() - t0) / 1e9 + scorer.seconds()));
                return groups;
            } finally {
                for (Map<String, FloatTensor> d : decoded) {
                    d.values().forEach(FloatTensor::close);
                }
            }
        }

        /**
         * GPTQ's Hessians of one expert: the routed tokens (all tokens for the shared expert) for W_gate/W_up, and
         * their intermediate activations silu(x W_gate^T) * (x W_up^T) through the dense, permuted weights for W_down.
         */
        private void accumulateHessians(Backend b, MoePool pool, int g, FloatTensor gate, FloatTensor up, Hessian hx, Hessian hh) {
            int width = gate.rows();
            try (Tensor bg = b.upload(gate); Tensor bu = b.upload(up)) {
                for (EnergyScorer.Group grp : scorer.groups()) {
                    try (FloatTensor xHost = scorer.captured().rowSlice(grp.firstRow(), grp.rows());
                         Tensor x = b.upload(xHost)) {
                        Tensor xe;
                        if (pool.isSharedGroup(g)) {
                            xe = x.view(0, x.shape());
                        } else {
                            Routing.ExpertRows r = grp.byExpert()[pool.expertOfGroup(g)];
                            if (r.count() == 0) {
                                continue;
                            }
                            xe = b.allocate(Shape.of(r.count(), pool.hidden()));
                            b.gatherRows(x, r.rows(), xe);
                        }
                        int n = xe.rows();
                        try (Tensor xeOwned = xe;
                             Tensor h = b.allocate(Shape.of(n, width));
                             Tensor u = b.allocate(Shape.of(n, width))) {
                            b.linear(xeOwned, bg, null, h);
                            b.linear(xeOwned, bu, null, u);
                            b.siluMul(h, u, h);
                            try (FloatTensor xh = b.toHost(xeOwned); FloatTensor hhost = b.toHost(h)) {
                                hx.add(xh);
                                hh.add(hhost);
                            }
                        }
                    }
                }
            }
        }

        /** Sum over tokens of ||y_quantized - y_dense||^2 with the dense routing. */
        private double quantizedDeltaSquared(Backend b, MoePool pool, LayerWeights weights, List<QuantGroup> groups,
                                             List<Map<String, FloatTensor>> decoded) {
            List<List<MoeOutputError.Term>> terms = new ArrayList<>();
            List<Tensor> uploads = new ArrayList<>();
            try {
                for (int g = 0; g < groups.size(); g++) {
                    Mlp mlp = groups.get(g).mlp();
                    Map<String, FloatTensor> d = decoded.get(g);
                    Tensor ng = up(b, d.get(projection(mlp.gate())), uploads);
                    Tensor nu = up(b, d.get(projection(mlp.up())), uploads);
                    Tensor nd = up(b, d.get(projection(mlp.down())), uploads);
                    Tensor og = up(b, weights.get(mlp.gate()), uploads);
                    Tensor ou = up(b, weights.get(mlp.up()), uploads);
                    Tensor od = up(b, weights.get(mlp.down()), uploads);
                    terms.add(List.of(new MoeOutputError.Term(ng, nu, nd, 1f), new MoeOutputError.Term(og, ou, od, -1f)));
                }
                return MoeOutputError.deltaSquared(scorer, terms, b);
            } finally {
                uploads.forEach(Tensor::close);
            }
        }

        private static Tensor up(Backend b, FloatTensor t, List<Tensor> uploads) {
            Tensor u = b.upload(t);
            uploads.add(u);
            return u;
        }

        private ObjectNode layerReport(LayerEnergy le, double[] energy, int[] bits, List<QuantGroup> groups, BitBudget budget,
                                       double relErr, int layerFallbacks, Map<String, Integer> reasons, double seconds) {
            MoePool pool = le.pool();
            ObjectNode n = CameraAnalyze.layerReport(le, energy);
            int[] widths = options.allocation().bits();
            ObjectNode classes = n.putObject("class_counts");
            for (int w : widths) {
                classes.put(Integer.toString(w), Arrays.stream(bits).filter(b -> b == w).count());
            }
            ArrayNode perExpert = n.putArray("expert_class_counts");
            for (int g = 0; g < groups.size(); g++) {
                int[] sorted = groups.get(g).expert().permutation().sortedBits();
                ArrayNode counts = CameraReports.object().arrayNode();
                for (int w : widths) {
                    counts.add(Arrays.stream(sorted).filter(b -> b == w).count());
                }
                if (pool.isSharedGroup(g)) {
                    n.set("shared_class_counts", counts);
                } else {
                    perExpert.add(counts);
                }
            }
            n.put("class_order", Arrays.toString(widths));
            CameraReports.putFinite(n, "relative_error", relErr);
            n.put("gptq_fallbacks", layerFallbacks);
            ObjectNode r = n.putObject("fallback_reasons");
            reasons.forEach(r::put);
            ObjectNode bpw = n.putObject("achieved_bpw");
            CameraReports.putAll(bpw, budget.report());
            n.put("seconds", seconds);
            return n;
        }

        @Override
        public void close() {
            if (scorer != null) {
                scorer.close();
                scorer = null;
            }
        }
    }
}
