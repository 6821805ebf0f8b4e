package io.whittle.methods.camera;

import io.whittle.compute.Backend;
import io.whittle.compute.Routing;
import io.whittle.forward.DecoderLayer;
import io.whittle.forward.LayerObserver;
import io.whittle.forward.LayerWeights;
import io.whittle.forward.TokenBatch;
import io.whittle.model.Checkpoint;
import io.whittle.model.ModelSpec;
import io.whittle.tensor.FloatTensor;
import io.whittle.tensor.HostAllocator;
import io.whittle.tensor.Shape;
import io.whittle.tensor.Tensor;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;

/**
 * Runs one decoder layer of a synthetic checkpoint on random hidden states, scoring it with an
 * {@link EnergyScorer} and recording the MoE block output of every token, so tests can compare against
 * independent fp64 computations from the weights.
 */
final class LayerHarness implements AutoCloseable {

    final ModelSpec spec;
    final Checkpoint checkpoint;
    final int layer;
    final TokenBatch batch;
    final FloatTensor hidden;
    final HostAllocator alloc;

    LayerHarness(ModelSpec spec, Checkpoint checkpoint, int layer, int sequences, int length, long seed) {
        this.spec = spec;
        this.checkpoint = checkpoint;
        this.layer = layer;
        List<int[]> seqs = new ArrayList<>();
        for (int s = 0; s < sequences; s++) {
            seqs.add(new int[length]);
        }
        this.batch = new TokenBatch(seqs);
        this.alloc = HostAllocator.root().newChild("harness", Long.MAX_VALUE);
        this.hidden = alloc.allocate(Shape.of(batch.totalTokens(), spec.hiddenSize()), "hidden");
        Random random = new Random(seed);
        for (long i = 0; i < hidden.numel(); i++) {
            hidden.set(i, (float) random.nextGaussian());
        }
    }

    LayerWeights load() {
        return LayerWeights.load(checkpoint, layer, new DecoderLayer(spec, layer).names().allTensors(), alloc);
    }

    /** What one forward of the layer showed. */
    static final class Run implements AutoCloseable {
        final LayerEnergy energy;
        final FloatTensor x;        // MoE block inputs [T, hidden]
        final FloatTensor y;        // MoE block outputs [T, hidden]
        final List<EnergyScorer.Group> groups;
        final double denseSq;
        private final EnergyScorer scorer;

        Run(EnergyScorer scorer, FloatTensor y) {
            this.scorer = scorer;
            this.energy = scorer.result();
            this.x = scorer.captured();
            this.y = y;
            this.groups = scorer.groups();
            this.denseSq = scorer.denseOutputSquared();
        }

        /** The routing of token t as (expert -> weight) over all experts (0 where not routed). */
        float[] routingOf(int t, int experts) {
            for (EnergyScorer.Group g : groups) {
                if (t >= g.firstRow() && t < g.firstRow() + g.rows()) {
                    Routing r = g.routing();
                    float[] dense = new float[experts];
                    int local = t - g.firstRow();
                    for (int i = 0; i < r.topK(); i++) {
                        dense[r.experts()[local * r.topK() + i]] += r.weights()[local * r.topK() + i];
                    }
                    return dense;
                }
            }
            throw new IllegalArgumentException("row " + t);
        }

        float sharedGateOf(int t) {
            for (EnergyScorer.Group g : groups) {
                if (t >= g.firstRow() && t < g.firstRow() + g.rows()) {
                    return g.sharedGate() == null ? 1f : g.sharedGate()[t - g.firstRow()];
                }
            }
            throw new IllegalArgumentException("row " + t);
        }

        EnergyScorer scorer() {
            return scorer;
        }

        @Override
        public void close() {
            scorer.close();
            y.close();
        }
    }

    /** Runs the layer with these weights; {@code maxGroupTokens} splits the tokens into several forward groups. */
    Run run(Backend backend, LayerWeights weights, int maxGroupTokens) {
        MoePool pool = MoePool.of(spec, layer);
        EnergyScorer scorer = new EnergyScorer(pool, weights, backend, alloc, batch.totalTokens());
        FloatTensor y = alloc.allocate(Shape.of(batch.totalTokens(), spec.hiddenSize()), "moe out");
        int[] rowCursor = new int[1];
        LayerObserver recorder = new LayerObserver() {
            @Override
            public void moeInput(MoeBlockInput input) {
                rowCursor[0] = input.firstRow();
                scorer.moeInput(input);
            }

            @Override
            public void moeOutput(Tensor output) {
                scorer.moeOutput(output);
                try (FloatTensor h = backend.toHost(output)) {
                    y.copyFrom(h, 0, (long) rowCursor[0] * spec.hiddenSize(), h.numel());
                }
            }
        };
        try (FloatTensor out = alloc.allocate(hidden.shape(), "layer out")) {
            new DecoderLayer(spec, layer).forward(backend, weights, hidden, out, batch, maxGroupTokens, recorder);
        }
        return new Run(scorer, y);
    }

    /** Closes the memory and the checkpoint (which the harness owns). */
    @Override
    public void close() {
        hidden.close();
        alloc.close();
        checkpoint.close();
    }
}
