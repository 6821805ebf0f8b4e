package io.whittle.testing;

import io.whittle.forward.LayerVisitor;
import io.whittle.forward.LayerWeights;
import io.whittle.forward.LayerwisePipeline;
import io.whittle.methods.CompressionMethod;
import io.whittle.methods.JobContext;
import io.whittle.methods.MethodDescriptor;
import io.whittle.methods.ParamSpec;
import io.whittle.model.ModelSpec;
import io.whittle.model.ModelSpec.Family;
import io.whittle.tensor.FloatTensor;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;

/**
 * A small real method for the service tests ({@code test-scale}): runs the layer-wise pipeline over the calibration
 * tokens and multiplies every MLP down_proj (dense, routed expert and shared expert) by {@code factor}, writing the
 * model through the same path as the real methods. {@code sleep_ms} per layer makes jobs slow enough for
 * cancellation and lease tests to catch them mid-run; {@code fail_at_layer} makes one fail.
 */
public final class ScaleMethod implements CompressionMethod {

    public static final String NAME = "test-scale";

    private static final MethodDescriptor DESCRIPTOR = new MethodDescriptor(NAME,
            "Test method: scales every MLP down_proj by a factor",
            List.of(ParamSpec.number("factor", 0.5, 0.0, true, 10.0, false, "multiplier of every down_proj"),
                    ParamSpec.integer("sleep_ms", 0, 0, 60_000, "pause after each layer (milliseconds)"),
                    ParamSpec.integer("fail_at_layer", -1, -1, 1_000, "throw at this layer (-1: never)")),
            Set.of(Family.LLAMA, Family.MIXTRAL, Family.QWEN2_MOE, Family.QWEN3_MOE, Family.OLMOE, Family.DEEPSEEK),
            true, true);

    @Override
    public MethodDescriptor descriptor() {
        return DESCRIPTOR;
    }

    /** The down_proj tensors of one layer. */
    public static List<String> downProjections(ModelSpec.LayerNames names) {
        List<String> out = new ArrayList<>();
        if (names.dense() != null) {
            out.add(names.dense().down());
        } else {
            names.moe().experts().forEach(e -> out.add(e.down()));
            if (names.moe().shared() != null) {
                out.add(names.moe().shared().down());
            }
        }
        return out;
    }

    @Override
    public void run(JobContext ctx) throws Exception {
        double factor = ctx.params().getDouble("factor");
        int sleepMs = ctx.params().getInt("sleep_ms");
        int failAt = ctx.params().getInt("fail_at_layer");
        int[] scaled = {0};
        ctx.runPipeline("compress", new LayerVisitor() {
            @Override
            public void compress(LayerWeights w) {
                if (w.layer() == failAt) {
                    throw new IllegalStateException("injected failure at layer " + failAt);
                }
                for (String name : downProjections(ctx.spec().layer(w.layer()))) {
                    FloatTensor t = w.get(name);
                    for (long i = 0; i < t.numel(); i++) {
                        t.set(i, (float) (t.get(i) * factor));
                    }
                    w.markChanged(name);
                    scaled[0]++;
                }
                if (sleepMs > 0) {
                    try {
                        Thread.sleep(sleepMs);
                    } catch (InterruptedException e) {
                        Thread.currentThread().interrupt();
                        throw new IllegalStateException("interrupted", e);
                    }
                }
            }

            @Override
            public void layerDone(LayerWeights w) {
                ctx.writeLayer(w);
            }
        }, LayerwisePipeline.Mode.SEQUENTIAL);
        ctx.writeNonLayerTensorsAndFiles();
        ctx.report().put("factor", factor);
        ctx.report().put("scaled_tensors", scaled[0]);
    }
}
