package io.whittle.forward;

import io.whittle.compute.Backend;
import io.whittle.model.Checkpoint;
import io.whittle.model.ModelSpec;
import io.whittle.tensor.FloatTensor;
import io.whittle.tensor.HostAllocator;
import io.whittle.tensor.Shape;
import io.whittle.tensor.Tensor;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.CancellationException;
import java.util.function.BooleanSupplier;

/**
 * Runs a model layer by layer over calibration tokens, holding only the hidden states of every token and one
 * layer's weights at a time. A {@link LayerVisitor} observes each layer and may change its weights; in
 * {@link Mode#SEQUENTIAL} mode the next layer sees the outputs of the changed layer (as GPTQ-style methods
 * do), in {@link Mode#PARALLEL} mode it sees the outputs of the original one. Optionally finishes with the final
 * norm and lm_head and scores next-token NLL.
 */
public final class LayerwisePipeline {

    public enum Mode { SEQUENTIAL, PARALLEL }

    /** Progress callbacks: a stage name and the layer it concerns (-1 when none). */
    public interface Listener {
        Listener NONE = (stage, layer, layers) -> {
        };

        void stage(String stage, int layer, int layers);
    }

    /**
     * @param mode           sequential or parallel propagation
     * @param maxGroupTokens rows per forward group (whole sequences); bounds activation memory
     * @param computeNll     score next-token NLL at the end
     * @param allocator      host allocator for the run (its peak is reported)
     * @param cancelled      checked at every layer boundary; true cancels with {@link CancellationException}
     */
    public record Options(Mode mode, int maxGroupTokens, boolean computeNll, HostAllocator allocator,
                          BooleanSupplier cancelled) {
        public static Options evaluation(HostAllocator allocator) {
            return new Options(Mode.SEQUENTIAL, DEFAULT_GROUP_TOKENS, true, allocator, () -> false);
        }
    }

    private static final int LOGIT_ROWS = 256;

    /** Rows per forward group: large enough for efficient GEMMs, small enough to bound activation memory. */
    public static final int DEFAULT_GROUP_TOKENS = 4096;

    private LayerwisePipeline() {
    }

    public static PipelineResult run(ModelSpec spec, Checkpoint checkpoint, Backend backend, TokenBatch batch,
                                     LayerVisitor visitor, Options options, Listener listener) {
        HostAllocator alloc = options.allocator();
        Map<String, Double> seconds = new LinkedHashMap<>();
        long t0 = System.nanoTime();
        listener.stage("embed", -1, spec.numLayers());
        FloatTensor h0 = Embeddings.lookup(spec, checkpoint, batch, alloc);
        seconds.merge("embed", secondsSince(t0), Double::sum);
        return runFrom(spec, checkpoint, backend, batch, h0, true, visitor, options, listener, seconds);
    }

    /**
     * As {@link #run}, from given input embeddings (multimodal models put image features into them); with
     * {@code closeInputs} the embeddings are released as soon as they are on the backend.
     */
    public static PipelineResult runFrom(ModelSpec spec, Checkpoint checkpoint, Backend backend, TokenBatch batch,
                                         FloatTensor inputsEmbeds, boolean closeInputs, LayerVisitor visitor, Options options,
                                         Listener listener, Map<String, Double> seconds) {
        HostAllocator alloc = options.allocator();
        int layers = spec.numLayers();
        int groupTokens = options.maxGroupTokens();
        if (backend instanceof io.whittle.compute.DeviceMemoryInfo memory) {
            // a GPU: shrink forward groups to what fits, or fail now with the numbers rather than mid-run
            groupTokens = MemoryPlanner.plan(spec, batch, groupTokens, memory.availableBytes(), backend.name()).groupTokens();
        }
        Shape hiddenShape = Shape.of(batch.totalTokens(), spec.hiddenSize());
        Tensor hidden = backend.allocate(hiddenShape);
        Tensor next = backend.allocate(hiddenShape);
        try {
            try (Tensor up = backend.upload(inputsEmbeds)) {
                backend.copy(up, 0, hidden, 0, hiddenShape.numel());
            } finally {
                if (closeInputs) {
                    inputsEmbeds.close();
                }
            }
            for (int l = 0; l < layers; l++) {
                if (options.cancelled().getAsBoolean()) {
                    throw new CancellationException("cancelled before layer " + l + " of " + layers);
                }
                listener.stage("layer", l, layers);
                DecoderLayer layer = new DecoderLayer(spec, l);
                long t = System.nanoTime();
                try (LayerWeights weights = LayerWeights.load(checkpoint, l, layer.names().allTensors(), alloc)) {
                    seconds.merge("load", secondsSince(t), Double::sum);
                    LayerObserver observer = visitor.observer(weights);
                    boolean propagated = false;
                    if (observer != null || options.mode() == Mode.PARALLEL) {
                        t = System.nanoTime();
                        layer.forward(backend, weights, hidden, next, batch, groupTokens, observer);
                        seconds.merge(observer != null ? "observe" : "forward", secondsSince(t), Double::sum);
                        propagated = true;
                    }
                    t = System.nanoTime();
                    visitor.compress(weights);
                    seconds.merge("compress", secondsSince(t), Double::sum);
                    if (!propagated || (options.mode() == Mode.SEQUENTIAL && weights.anyChanged())) {
                        t = System.nanoTime();
                        layer.forward(backend, weights, hidden, next, batch, groupTokens, null);
                        seconds.merge("forward", secondsSince(t), Double::sum);
                    }
                    t = System.nanoTime();
                    visitor.layerDone(weights);
                    seconds.merge("write", secondsSince(t), Double::sum);
                }
                Tensor swap = hidden;
                hidden = next;
                next = swap;
            }
            double[] nll = null;
            int[] predicted = null;
            if (options.computeNll()) {
                listener.stage("head", -1, layers);
                long t = System.nanoTime();
                nll = new double[batch.sequenceCount()];
                predicted = new int[batch.sequenceCount()];
                scoreNextTokens(spec, checkpoint, backend, batch, hidden, alloc, nll, predicted);
                seconds.merge("head", secondsSince(t), Double::sum);
            }
            return new PipelineResult(nll, predicted, seconds, alloc.peakBytes());
        } finally {
            hidden.close();
            next.close();
        }
    }

    /** Final norm, lm_head and the NLL of each next token, in row chunks so [T, vocab] logits never exist whole. */
    private static void scoreNextTokens(ModelSpec spec, Checkpoint checkpoint, Backend backend, TokenBatch batch, Tensor hidden,
                                        HostAllocator alloc, double[] nll, int[] predicted) {
        int[] targets = batch.nextTokenTargets();
        int[] seqOfRow = new int[batch.totalTokens()];
        for (int s = 0; s < batch.sequenceCount(); s++) {
            java.util.Arrays.fill(seqOfRow, batch.start(s), batch.start(s) + batch.length(s), s);
        }
        try (FloatTensor normHost = checkpoint.readFloat(spec.finalNorm(), alloc);
             FloatTensor headHost = checkpoint.readFloat(spec.lmHead(), alloc);
             Tensor norm = backend.upload(normHost);
             Tensor head = backend.upload(headHost)) {
            int rows = batch.totalTokens();
            for (int r0 = 0; r0 < rows; r0 += LOGIT_ROWS) {
                int n = Math.min(LOGIT_ROWS, rows - r0);
                try (Tensor x = backend.allocate(Shape.of(n, spec.hiddenSize()));
                     Tensor logits = backend.allocate(Shape.of(n, spec.vocabSize()))) {
                    backend.rmsNorm(hidden.rowSlice(r0, n), norm, spec.rmsNormEps(), x);
                    backend.linear(x, head, null, logits);
                    int[] tgt = java.util.Arrays.copyOfRange(targets, r0, r0 + n);
                    double[] rowNll = backend.crossEntropy(logits, tgt);
                    for (int i = 0; i < n; i++) {
                        if (tgt[i] >= 0) {
                            nll[seqOfRow[r0 + i]] += rowNll[i];
                            predicted[seqOfRow[r0 + i]]++;
                        }
                    }
                }
            }
        }
    }

    private static double secondsSince(long t) {
        return (System.nanoTime() - t) / 1e9;
    }
}
