package io.whittle.forward;

import io.whittle.compute.Backend;
import io.whittle.model.Checkpoint;
import io.whittle.model.ModelSpec;
import io.whittle.model.ModelSpecs;
import io.whittle.tensor.FloatTensor;
import io.whittle.tensor.HostAllocator;
import io.whittle.tensor.Shape;
import io.whittle.tensor.Tensor;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

/**
 * Draws token sequences from a (small) model itself, so that perplexity on them measures how far a compressed
 * model has moved from the dense one: the dense model is by construction the best predictor of its own samples
 * (in expectation the NLL gap is the KL divergence), which random tokens on random weights do not give.
 *
 * <p>Deterministic: sequence s starts with a token drawn uniformly from the vocabulary, then each next token is
 * drawn from softmax(logits / temperature) of the full forward over the growing prefix (every layer re-run on the
 * whole prefix: no KV cache, which small models make affordable), with one {@link SplittableRandom} seeded by
 * {@code seed}. All layers are held in memory.
 */
public final class DenseSampler {

    private DenseSampler() {
    }

    /** {@code sequences} token sequences of {@code length} tokens drawn from the model at {@code temperature}. */
    public static List<int[]> sample(Path modelDir, Backend backend, int sequences, int length, double temperature, long seed) {
        if (sequences < 1 || length < 1 || !(temperature > 0)) {
            throw new IllegalArgumentException("sampling needs sequences >= 1, length >= 1 and temperature > 0 (got "
                    + sequences + ", " + length + ", " + temperature + ")");
        }
        ModelSpec spec = ModelSpecs.load(modelDir);
        SplittableRandom random = new SplittableRandom(seed);
        int[][] seqs = new int[sequences][length];
        for (int[] s : seqs) {
            s[0] = random.nextInt(spec.vocabSize());
        }
        try (Checkpoint ckpt = Checkpoint.open(modelDir);
             HostAllocator alloc = HostAllocator.root().newChild("sampler", Long.MAX_VALUE)) {
            List<LayerWeights> layers = new ArrayList<>();
            List<DecoderLayer.Uploaded> uploaded = new ArrayList<>(); // once, not at every sampling step
            try (FloatTensor normHost = ckpt.readFloat(spec.finalNorm(), alloc);
                 FloatTensor headHost = ckpt.readFloat(spec.lmHead(), alloc);
                 Tensor norm = backend.upload(normHost);
                 Tensor head = backend.upload(headHost)) {
                for (int l = 0; l < spec.numLayers(); l++) {
                    layers.add(LayerWeights.load(ckpt, l, new DecoderLayer(spec, l).names().allTensors(), alloc));
                    uploaded.add(DecoderLayer.upload(backend, layers.get(l)));
                }
                for (int len = 1; len < length; len++) {
                    List<int[]> prefixes = new ArrayList<>();
                    for (int[] s : seqs) {
                        prefixes.add(java.util.Arrays.copyOf(s, len));
                    }
                    TokenBatch batch = new TokenBatch(prefixes);
                    float[][] logits = lastLogits(spec, ckpt, backend, batch, uploaded, norm, head, alloc);
                    for (int s = 0; s < sequences; s++) {
                        seqs[s][len] = draw(logits[s], temperature, random);
                    }
                }
            } finally {
                uploaded.forEach(DecoderLayer.Uploaded::close);
                layers.forEach(LayerWeights::close);
            }
        }
        return List.of(seqs);
    }

    private static float[][] lastLogits(ModelSpec spec, Checkpoint ckpt, Backend backend, TokenBatch batch,
                                        List<DecoderLayer.Uploaded> layers, Tensor norm, Tensor head, HostAllocator alloc) {
        int n = batch.sequenceCount();
        Shape hs = Shape.of(batch.totalTokens(), spec.hiddenSize());
        try (FloatTensor h0 = Embeddings.lookup(spec, ckpt, batch, alloc)) {
            Tensor hidden = backend.allocate(hs);
            Tensor next = backend.allocate(hs);
            try {
                try (Tensor up = backend.upload(h0)) {
                    backend.copy(up, 0, hidden, 0, hs.numel());
                }
                for (int l = 0; l < layers.size(); l++) {
                    new DecoderLayer(spec, l).forward(backend, layers.get(l), hidden, next, batch, 1 << 20, null);
                    Tensor t = hidden;
                    hidden = next;
                    next = t;
                }
                int[] last = new int[n];
                for (int s = 0; s < n; s++) {
                    last[s] = batch.start(s) + batch.length(s) - 1;
                }
                try (Tensor x = backend.allocate(Shape.of(n, spec.hiddenSize()));
                     Tensor xn = backend.allocate(Shape.of(n, spec.hiddenSize()));
                     Tensor logits = backend.allocate(Shape.of(n, spec.vocabSize()))) {
                    backend.gatherRows(hidden, last, x);
                    backend.rmsNorm(x, norm, spec.rmsNormEps(), xn);
                    backend.linear(xn, head, null, logits);
                    try (FloatTensor host = backend.toHost(logits)) {
                        float[][] out = new float[n][];
                        for (int s = 0; s < n; s++) {
                            out[s] = host.row(s);
                        }
                        return out;
                    }
                }
            } finally {
                hidden.close();
                next.close();
            }
        }
    }

    /** Inverse-CDF draw from softmax(logits / temperature) in fp64. */
    public static int draw(float[] logits, double temperature, SplittableRandom random) {
        double max = Double.NEGATIVE_INFINITY;
        for (float v : logits) {
            max = Math.max(max, v / temperature);
        }
        double[] p = new double[logits.length];
        double sum = 0;
        for (int i = 0; i < p.length; i++) {
            p[i] = Math.exp(logits[i] / temperature - max);
            sum += p[i];
        }
        double u = random.nextDouble() * sum;
        double acc = 0;
        for (int i = 0; i < p.length; i++) {
            acc += p[i];
            if (u < acc) {
                return i;
            }
        }
        return p.length - 1;
    }
}
