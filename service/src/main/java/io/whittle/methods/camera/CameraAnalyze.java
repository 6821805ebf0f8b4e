package io.whittle.methods.camera;

import io.whittle.forward.LayerObserver;
import io.whittle.forward.LayerVisitor;
import io.whittle.forward.LayerWeights;
import io.whittle.forward.LayerwisePipeline;
import io.whittle.methods.CompressionMethod;
import io.whittle.methods.JobContext;
import io.whittle.methods.MethodDescriptor;
import io.whittle.methods.MethodParams;
import io.whittle.model.ModelSpec;
import io.whittle.model.safetensors.SafetensorsWriter;
import io.whittle.model.safetensors.TensorSource;
import io.whittle.tensor.DType;
import io.whittle.tensor.FloatTensor;
import io.whittle.tensor.HostAllocator;
import io.whittle.tensor.Shape;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import tools.jackson.databind.node.ArrayNode;
import tools.jackson.databind.node.ObjectNode;

/**
 * {@code camera-analyze}: CAMERA's micro-expert energies of every MoE layer, without changing the model. Writes
 * {@value #ENERGIES_FILE} (one F32 vector {@code layers.<l>.energy} per MoE layer, in pool order: shared channels,
 * then expert 0 channels 0..f-1, expert 1, ...) and the report.
 */
public final class CameraAnalyze implements CompressionMethod {

    public static final String NAME = "camera-analyze";
    public static final String ENERGIES_FILE = "energies.safetensors";

    private static final MethodDescriptor DESCRIPTOR = new MethodDescriptor(NAME,
            "CAMERA micro-expert energies of every MoE layer (analysis only; the model is not changed)",
            List.of(CameraParams.ALPHA), CameraParams.FAMILIES, true, false);

    @Override
    public MethodDescriptor descriptor() {
        return DESCRIPTOR;
    }

    @Override
    public void check(MethodParams params, ModelSpec spec) {
        CameraParams.requireMoe(NAME, spec);
    }

    /** Name of layer l's vector in the energies file. */
    public static String energyTensorName(int layer) {
        return "layers." + layer + ".energy";
    }

    @Override
    public void run(JobContext ctx) {
        ModelSpec spec = ctx.spec();
        double alpha = ctx.params().getDouble("alpha");
        Map<Integer, double[]> energies = new LinkedHashMap<>();
        ObjectNode result = ctx.report();
        result.put("alpha", alpha);
        result.put("pool_order", "shared channels, then expert 0 channels 0..f-1, expert 1, ...");
        result.put("routing_weights", RoutingNote.TEXT);
        result.put("energies_file", ENERGIES_FILE);
        ArrayNode layers = result.putArray("layers");
        double[] scoreSeconds = new double[1];
        LayerVisitor visitor = new LayerVisitor() {
            EnergyScorer scorer;

            @Override
            public LayerObserver observer(LayerWeights weights) {
                scorer = EnergyScorer.forLayer(ctx, weights, 0);
                return scorer;
            }

            @Override
            public void compress(LayerWeights weights) {
                if (scorer == null) {
                    return;
                }
                try {
                    LayerEnergy le = scorer.result();
                    double[] e = le.energy(alpha);
                    energies.put(weights.layer(), e);
                    layers.add(layerReport(le, e));
                    scoreSeconds[0] += scorer.seconds();
                } finally {
                    scorer.close();
                    scorer = null;
                }
            }
        };
        ctx.runPipeline(NAME, visitor, LayerwisePipeline.Mode.SEQUENTIAL);
        ctx.addStageSeconds("camera.score", scoreSeconds[0]);
        long t = System.nanoTime();
        writeEnergies(ctx, spec, alpha, energies);
        ctx.addStageSeconds("camera.write", (System.nanoTime() - t) / 1e9);
        ObjectNode totals = result.putObject("totals");
        totals.put("moe_layers", energies.size());
        totals.put("micro_experts_per_layer", spec.moeChannelsPerLayer());
        long noTokens = 0;
        for (var l : layers) {
            noTokens += l.get("experts_without_tokens").asLong();
        }
        totals.put("experts_without_tokens", noTokens);
        totals.put("score_seconds", scoreSeconds[0]);
    }

    static ObjectNode layerReport(LayerEnergy le, double[] energy) {
        ObjectNode n = CameraReports.object();
        MoePool pool = le.pool();
        n.put("layer", pool.layer());
        n.put("N_e", pool.size());
        n.put("experts", pool.experts());
        n.put("expert_width", pool.expertWidth());
        n.put("shared_width", pool.sharedWidth());
        n.put("tokens", le.tokens());
        CameraReports.longs(n.putArray("tokens_per_expert"), le.tokensPerExpert());
        n.put("experts_without_tokens", le.expertsWithoutTokens());
        CameraReports.energyStats(n.putObject("energy"), energy, null);
        return n;
    }

    private static void writeEnergies(JobContext ctx, ModelSpec spec, double alpha, Map<Integer, double[]> energies) {
        List<TensorSource> tensors = new ArrayList<>();
        List<FloatTensor> owned = new ArrayList<>();
        HostAllocator alloc = ctx.allocator();
        try {
            for (Map.Entry<Integer, double[]> e : energies.entrySet()) {
                double[] v = e.getValue();
                FloatTensor t = alloc.allocate(Shape.of(v.length), "energies");
                owned.add(t);
                for (int i = 0; i < v.length; i++) {
                    t.set(i, (float) v[i]);
                }
                tensors.add(TensorSource.ofFloat(energyTensorName(e.getKey()), DType.F32, t));
            }
            Map<String, String> meta = new LinkedHashMap<>();
            meta.put("format", "whittle-camera-energies");
            meta.put("alpha", Double.toString(alpha));
            meta.put("pool_order", "shared,expert0..expertE-1");
            meta.put("experts", Integer.toString(spec.moe().experts()));
            meta.put("expert_width", Integer.toString(spec.moe().expertIntermediate()));
            meta.put("shared_width", Integer.toString(spec.moe().sharedIntermediate()));
            meta.put("moe_layers", energies.keySet().toString());
            SafetensorsWriter.write(ctx.output().stagingDirectory().resolve(ENERGIES_FILE), tensors, meta);
        } finally {
            owned.forEach(FloatTensor::close);
        }
    }
}
