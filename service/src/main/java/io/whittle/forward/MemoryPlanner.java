package io.whittle.forward;

import io.whittle.model.ModelSpec;
import io.whittle.model.ModelSpec.TensorShape;
import java.util.HashMap;
import java.util.Locale;
import java.util.Map;

/**
 * Plans the device memory of the layer-wise pipeline on a backend with bounded memory (a GPU), from the model's
 * shapes and the free device memory: the pipeline keeps the hidden states of every token on the device (two
 * copies: input and output of the layer), one layer's weights (uploaded in fp32), and the activations of one
 * forward group; at the end the final norm, lm_head and a block of logits. The plan picks the largest group of
 * tokens (at most the requested one, at least the longest sequence) that fits, and a job that cannot fit even one
 * layer with its longest sequence fails before it starts, with the numbers.
 *
 * <p>The activation estimate follows {@link DecoderLayer}'s allocations: the attention block (normed input, q,
 * k, v, attention output) and the MLP block (normed input, output, and gate/up of the dense MLP, of one expert
 * given every token, or of the shared expert) are never alive together. Not counted: attention probabilities
 * for observers (a 256 MiB budget in the CUDA backend) and bf16 operand copies of a GEMM, which the 10% margin
 * (also for the CUDA context, allocator rounding and fragmentation) has to cover.
 */
public final class MemoryPlanner {

    /** Fraction of the free memory a plan may use. */
    public static final double USABLE_FRACTION = 0.9;
    /** Rows of logits scored at once at the end of the pipeline (LayerwisePipeline's block). */
    static final int LOGIT_ROWS = 256;

    /**
     * A memory plan: forward group size and the bytes of each part at the peak (the largest layer).
     *
     * @param peakBytes the largest of: layer peak (hidden + weights + activations), start (hidden + embeddings),
     *                  end (hidden + final norm, lm_head and logits)
     */
    public record Plan(int groupTokens, long hiddenBytes, long layerWeightBytes, long activationBytes, long headBytes,
                       long peakBytes, long availableBytes) {

        public String describe() {
            return String.format(Locale.ROOT, "group of %d tokens: hidden states %s + layer weights %s + activations %s = %s "
                            + "(head stage %s) of %s available", groupTokens, gib(hiddenBytes), gib(layerWeightBytes), gib(activationBytes),
                    gib(hiddenBytes + layerWeightBytes + activationBytes), gib(hiddenBytes + headBytes), gib(availableBytes));
        }
    }

    private MemoryPlanner() {
    }

    static String gib(long bytes) {
        return String.format(Locale.ROOT, "%.2f GiB", bytes / (double) (1L << 30));
    }

    /**
     * @param availableBytes device memory the run may use (free memory, plus what the backend holds for reuse)
     * @throws IllegalStateException when one layer with the longest sequence does not fit, with the numbers
     */
    public static Plan plan(ModelSpec spec, TokenBatch batch, int maxGroupTokens, long availableBytes, String device) {
        long tokens = batch.totalTokens();
        int longest = 0;
        for (int s = 0; s < batch.sequenceCount(); s++) {
            longest = Math.max(longest, batch.length(s));
        }
        long h = spec.hiddenSize();
        long hidden = 2 * 4 * tokens * h;
        long weights = largestLayerBytes(spec);
        long head = 4 * (h + (long) spec.vocabSize() * h + LOGIT_ROWS * (h + (long) spec.vocabSize()));
        long start = 3 * 4 * tokens * h; // hidden, next and the uploaded embeddings
        long budget = (long) (availableBytes * USABLE_FRACTION);
        int group = Math.max(1, Math.min(maxGroupTokens, (int) Math.min(Integer.MAX_VALUE, tokens)));
        while (true) {
            int rows = Math.max(group, longest);
            long act = activationBytes(spec, rows);
            long peak = Math.max(Math.max(hidden + weights + act, start), hidden + head);
            if (peak <= budget) {
                return new Plan(group, hidden, weights, act, head, peak, availableBytes);
            }
            if (group <= longest || group == 1) {
                throw new IllegalStateException(String.format(Locale.ROOT,
                        "%s - %d calibration tokens of %s do not fit: hidden states %s + largest layer's weights %s + activations for %d "
                                + "tokens %s = %s, head stage %s, start %s; %s of %s available may be used (%.0f%%). Use fewer or shorter "
                                + "calibration sequences, or a GPU with more memory",
                        device, tokens, spec.modelType(), gib(hidden), gib(weights), rows, gib(act), gib(hidden + weights + act),
                        gib(hidden + head), gib(start), gib(budget), gib(availableBytes), USABLE_FRACTION * 100));
            }
            group = Math.max(longest, group / 2);
        }
    }

    /** fp32 bytes of the largest decoder layer. */
    static long largestLayerBytes(ModelSpec spec) {
        Map<String, Long> numel = new HashMap<>();
        for (TensorShape t : spec.expectedTensors()) {
            numel.put(t.name(), t.shape().numel());
        }
        long max = 0;
        for (int l = 0; l < spec.numLayers(); l++) {
            long bytes = 0;
            for (String name : new DecoderLayer(spec, l).names().allTensors()) {
                bytes += 4 * numel.getOrDefault(name, 0L);
            }
            max = Math.max(max, bytes);
        }
        return max;
    }

    /** Peak fp32 activation bytes of one forward group of {@code rows} tokens (the larger of the two blocks). */
    static long activationBytes(ModelSpec spec, long rows) {
        long h = spec.hiddenSize();
        long q = (long) spec.numHeads() * spec.headDim();
        long kv = (long) spec.numKvHeads() * spec.headDim();
        long attention = h + 2 * q + 2 * kv;
        long mlp;
        if (spec.moe() != null) {
            ModelSpec.Moe moe = spec.moe();
            long expert = 2 * h + 2L * moe.expertIntermediate(); // worst case: every token routed to one expert
            long shared = moe.sharedIntermediate() > 0 ? h + 2L * moe.sharedIntermediate() : 0;
            mlp = 2 * h + Math.max(moe.experts(), Math.max(expert, shared));
            mlp = Math.max(mlp, 2 * h + Math.max(spec.intermediateSize(), 0) * 2L); // dense layers of a mixed model
        } else {
            mlp = 2 * h + 2L * spec.intermediateSize();
        }
        return 4 * rows * Math.max(attention, mlp);
    }
}
