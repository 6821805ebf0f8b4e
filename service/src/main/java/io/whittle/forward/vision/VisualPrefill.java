package io.whittle.forward.vision;

import io.whittle.compute.AttentionObserver;
import io.whittle.compute.AttentionShape;
import io.whittle.compute.Backend;
import io.whittle.compute.VisualLayout;
import io.whittle.forward.DecoderLayer;
import io.whittle.forward.LayerObserver;
import io.whittle.forward.LayerWeights;
import io.whittle.forward.TokenBatch;
import io.whittle.model.Checkpoint;
import io.whittle.model.ModelSpec;
import io.whittle.model.ModelSpec.LayerNames;
import io.whittle.tensor.FloatTensor;
import io.whittle.tensor.HostAllocator;
import io.whittle.tensor.Shape;
import io.whittle.tensor.Tensor;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * Prefill of a LLaVA language model over one multimodal sequence, one layer at a time (so a caller can stream
 * weights layer by layer over many sequences), dense or with {@link VisualPruning}:
 * <ul>
 *   <li>dense: the engine's Llama {@link DecoderLayer}, causal over the whole sequence;</li>
 *   <li>{@link VisualExecution#EFFICIENT}: visual queries attend only to the prefix and their grid window, pruned
 *       heads do no visual q/k/v/o work (their weights are sliced away for the visual rows), text queries see
 *       visual keys only in kept heads (renormalised), and from the drop layer on the visual rows are removed
 *       from the sequence (text keeps its original positions);</li>
 *   <li>{@link VisualExecution#MASKED}: the same function computed densely with masks (the efficient mode's
 *       oracle);</li>
 *   <li>{@link VisualExecution#EXACT}: the released YOPO code's semantics (post-softmax zeroing of visual keys in
 *       pruned heads and dropped layers, no renormalisation; visual rows keep running but are dead).</li>
 * </ul>
 * The FFN runs in full for every row (the paper's sparse visual FFN needs re-training and is only accounted).
 */
public final class VisualPrefill {

    private VisualPrefill() {
    }

    /** How pruned attention is executed. */
    public enum VisualExecution { EFFICIENT, MASKED, EXACT }

    /** The running state of one sequence: hidden rows, their original positions and where the visual rows are. */
    public static final class State implements AutoCloseable {
        private final MultimodalSequence sequence;
        private Tensor hidden;
        private int[] positions;
        private boolean visualPresent = true;
        private final Backend backend;

        private State(Backend backend, MultimodalSequence sequence, Tensor hidden) {
            this.backend = backend;
            this.sequence = sequence;
            this.hidden = hidden;
            this.positions = new int[sequence.length()];
            for (int i = 0; i < positions.length; i++) {
                positions[i] = i;
            }
        }

        public MultimodalSequence sequence() {
            return sequence;
        }

        public Tensor hidden() {
            return hidden;
        }

        public int rows() {
            return hidden.rows();
        }

        public boolean visualPresent() {
            return visualPresent;
        }

        /** First row after the image in the current row order (the prefix length once visual rows are gone). */
        public int textStart() {
            return visualPresent ? sequence.textStart() : sequence.prefix();
        }

        /** Removes the visual rows (efficient execution from the drop layer on). */
        void dropVisual() {
            if (!visualPresent) {
                return;
            }
            int p = sequence.prefix(), ve = sequence.textStart(), t = hidden.rows(), d = hidden.cols();
            Tensor next = backend.allocate(Shape.of(t - sequence.visual(), d));
            backend.copy(hidden, 0, next, 0, (long) p * d);
            backend.copy(hidden, (long) ve * d, next, (long) p * d, (long) (t - ve) * d);
            int[] pos = new int[t - sequence.visual()];
            System.arraycopy(positions, 0, pos, 0, p);
            System.arraycopy(positions, ve, pos, p, t - ve);
            hidden.close();
            hidden = next;
            positions = pos;
            visualPresent = false;
        }

        /** Host copy of the final-layer hidden states of the text rows after the image [text, hidden]. */
        public FloatTensor textHidden(HostAllocator alloc) {
            int start = textStart(), n = rows() - start;
            FloatTensor out = alloc.allocate(Shape.of(n, hidden.cols()), "text hidden");
            try (FloatTensor h = backend.toHost(hidden)) {
                out.copyFrom(h, (long) start * hidden.cols(), 0, out.numel());
            }
            return out;
        }

        @Override
        public void close() {
            hidden.close();
        }
    }

    /**
     * inputs_embeds of a sequence: token embeddings with the image embeddings [visual, hidden] written over the
     * visual rows (what LLaVA's masked_scatter does), on the backend.
     */
    public static State start(Backend b, ModelSpec spec, Checkpoint checkpoint, MultimodalSequence seq, FloatTensor imageEmbeds,
                              HostAllocator alloc) {
        int d = spec.hiddenSize();
        if (imageEmbeds.shape().rank() != 2 || imageEmbeds.rows() != seq.visual() || imageEmbeds.cols() != d) {
            throw new IllegalArgumentException("image embeddings must be [" + seq.visual() + ", " + d + "], got " + imageEmbeds.shape());
        }
        int[] ids = seq.tokens();
        try (FloatTensor h = alloc.allocate(Shape.of(ids.length, d), "inputs_embeds")) {
            for (int row = 0; row < ids.length; row++) {
                if (row >= seq.prefix() && row < seq.textStart()) {
                    continue;
                }
                if (ids[row] < 0 || ids[row] >= spec.vocabSize()) {
                    throw new IllegalArgumentException("token id " + ids[row] + " at position " + row + " is outside the vocabulary of "
                            + spec.vocabSize());
                }
                checkpoint.readRows(spec.embedTokens(), ids[row], 1, h, row);
            }
            h.copyFrom(imageEmbeds, 0, (long) seq.prefix() * d, imageEmbeds.numel());
            Tensor hidden = b.allocate(Shape.of(ids.length, d));
            try (Tensor up = b.upload(h)) {
                b.copy(up, 0, hidden, 0, h.numel());
            }
            return new State(b, seq, hidden);
        }
    }

    /** One dense layer (the engine's Llama decoder layer), with an optional observer (attention statistics). */
    public static void denseLayer(Backend b, ModelSpec spec, int layer, LayerWeights weights, State s, LayerObserver observer) {
        if (!s.visualPresent) {
            throw new IllegalStateException("dense layers need the full sequence");
        }
        try (Tensor out = b.allocate(s.hidden.shape())) {
            new DecoderLayer(spec, layer).forward(b, weights, s.hidden, out, new TokenBatch(List.of(s.sequence.tokens())),
                    Integer.MAX_VALUE, observer);
            b.copy(out, 0, s.hidden, 0, out.numel());
        }
    }

    /** Per-layer slices of q/k/v rows and o_proj columns of the heads that keep visual work (efficient mode). */
    public static final class KeptHeads implements AutoCloseable {
        final int[] heads;
        final int[] kvHeads;
        final Tensor wq, wk, wv, wo;
        private final List<FloatTensor> host;

        private KeptHeads(int[] heads, int[] kvHeads, Tensor wq, Tensor wk, Tensor wv, Tensor wo, List<FloatTensor> host) {
            this.heads = heads;
            this.kvHeads = kvHeads;
            this.wq = wq;
            this.wk = wk;
            this.wv = wv;
            this.wo = wo;
            this.host = host;
        }

        public int count() {
            return heads.length;
        }

        @Override
        public void close() {
            for (Tensor t : new Tensor[] {wq, wk, wv, wo}) {
                if (t != null) {
                    t.close();
                }
            }
            host.forEach(FloatTensor::close);
        }
    }

    /** Gathers the kept heads' weight slices of one layer (once per layer, reused for every sequence). */
    public static KeptHeads keptHeads(Backend b, ModelSpec spec, LayerWeights weights, boolean[] keep, HostAllocator alloc) {
        int hd = spec.headDim(), d = spec.hiddenSize(), group = spec.numHeads() / spec.numKvHeads();
        List<Integer> hs = new ArrayList<>();
        List<Integer> kvs = new ArrayList<>();
        for (int h = 0; h < keep.length; h++) {
            if (keep[h]) {
                hs.add(h);
                if (!kvs.contains(h / group)) {
                    kvs.add(h / group);
                }
            }
        }
        int[] heads = hs.stream().mapToInt(Integer::intValue).toArray();
        int[] kv = kvs.stream().mapToInt(Integer::intValue).toArray();
        if (heads.length == 0) {
            return new KeptHeads(heads, kv, null, null, null, null, List.of());
        }
        LayerNames n = new DecoderLayer(spec, weights.layer()).names();
        List<FloatTensor> host = new ArrayList<>();
        FloatTensor q = gatherRows(weights.get(n.q()), heads, hd, alloc);
        host.add(q);
        FloatTensor k = gatherRows(weights.get(n.k()), kv, hd, alloc);
        host.add(k);
        FloatTensor v = gatherRows(weights.get(n.v()), kv, hd, alloc);
        host.add(v);
        FloatTensor wo = weights.get(n.o());
        FloatTensor o = alloc.allocate(Shape.of(d, (long) heads.length * hd), "kept o_proj columns");
        host.add(o);
        int width = wo.cols();
        for (int r = 0; r < d; r++) {
            for (int i = 0; i < heads.length; i++) {
                o.copyFrom(wo, (long) r * width + (long) heads[i] * hd, ((long) r * heads.length + i) * hd, hd);
            }
        }
        return new KeptHeads(heads, kv, b.upload(q), b.upload(k), b.upload(v), b.upload(o), host);
    }

    private static FloatTensor gatherRows(FloatTensor w, int[] heads, int hd, HostAllocator alloc) {
        int cols = w.cols();
        FloatTensor out = alloc.allocate(Shape.of((long) heads.length * hd, cols), "kept head rows");
        for (int i = 0; i < heads.length; i++) {
            out.copyFrom(w, (long) heads[i] * hd * cols, (long) i * hd * cols, (long) hd * cols);
        }
        return out;
    }

    /**
     * One layer with visual pruning. {@code kept} must come from {@link #keptHeads} with
     * {@code plan.activeHeads(layer)} for EFFICIENT layers before the drop layer (null otherwise).
     */
    public static void prunedLayer(Backend b, ModelSpec spec, int layer, LayerWeights weights, KeptHeads kept, State s,
                                   VisualExecution mode, VisualPruning plan) {
        if (spec.qkNorm() != ModelSpec.QkNorm.NONE || spec.isMoeLayer(layer)) {
            throw new IllegalArgumentException("visual pruning runs Llama-style decoder layers only");
        }
        boolean[] active = plan.activeHeads(layer);
        if (mode == VisualExecution.EFFICIENT && layer >= plan.dropLayer()) {
            s.dropVisual();
        }
        LayerNames n = new DecoderLayer(spec, layer).names();
        Map<String, Tensor> w = new HashMap<>();
        try {
            for (String name : weights.names()) {
                w.put(name, b.upload(weights.get(name)));
            }
            Tensor hidden = s.hidden;
            int t = hidden.rows(), d = spec.hiddenSize(), hd = spec.headDim();
            int qDim = spec.numHeads() * hd, kvDim = spec.numKvHeads() * hd;
            AttentionShape shape = new AttentionShape(spec.numHeads(), spec.numKvHeads(), hd);
            MultimodalSequence seq = s.sequence;
            VisualLayout layout = s.visualPresent ? seq.layout(plan.window()) : null;
            boolean sparse = mode == VisualExecution.EFFICIENT && s.visualPresent;
            try (Tensor xn = b.allocate(Shape.of(t, d));
                 Tensor q = b.allocate(Shape.of(t, qDim));
                 Tensor k = b.allocate(Shape.of(t, kvDim));
                 Tensor v = b.allocate(Shape.of(t, kvDim));
                 Tensor attn = b.allocate(Shape.of(t, qDim));
                 Tensor y = b.allocate(Shape.of(t, d))) {
                b.rmsNorm(hidden, w.get(n.inputNorm()), spec.rmsNormEps(), xn);
                if (sparse) {
                    if (kept == null || kept.heads.length != count(active)) {
                        throw new IllegalArgumentException("layer " + layer + ": kept-head weights do not match the plan");
                    }
                    int p = seq.prefix(), ve = seq.textStart(), nv = seq.visual();
                    for (int[] range : new int[][] {{0, p}, {ve, t - ve}}) {
                        if (range[1] > 0) {
                            b.linear(xn.rowSlice(range[0], range[1]), w.get(n.q()), null, q.rowSlice(range[0], range[1]));
                            b.linear(xn.rowSlice(range[0], range[1]), w.get(n.k()), null, k.rowSlice(range[0], range[1]));
                            b.linear(xn.rowSlice(range[0], range[1]), w.get(n.v()), null, v.rowSlice(range[0], range[1]));
                        }
                    }
                    if (kept.count() > 0) {
                        Tensor xv = xn.rowSlice(p, nv);
                        try (Tensor qc = b.allocate(Shape.of(nv, (long) kept.heads.length * hd));
                             Tensor kc = b.allocate(Shape.of(nv, (long) kept.kvHeads.length * hd));
                             Tensor vc = b.allocate(Shape.of(nv, (long) kept.kvHeads.length * hd))) {
                            b.linear(xv, kept.wq, null, qc);
                            b.linear(xv, kept.wk, null, kc);
                            b.linear(xv, kept.wv, null, vc);
                            for (int i = 0; i < kept.heads.length; i++) {
                                b.copyBlock(qc, 0, i * hd, q, p, kept.heads[i] * hd, nv, hd);
                            }
                            for (int i = 0; i < kept.kvHeads.length; i++) {
                                b.copyBlock(kc, 0, i * hd, k, p, kept.kvHeads[i] * hd, nv, hd);
                                b.copyBlock(vc, 0, i * hd, v, p, kept.kvHeads[i] * hd, nv, hd);
                            }
                        }
                    }
                    b.rotary(q, spec.numHeads(), hd, s.positions, spec.ropeTheta());
                    b.rotary(k, spec.numKvHeads(), hd, s.positions, spec.ropeTheta());
                    b.visualPrunedAttention(q, k, v, attn, shape, layout, active);
                    for (int[] range : new int[][] {{0, p}, {ve, t - ve}}) {
                        if (range[1] > 0) {
                            b.linear(attn.rowSlice(range[0], range[1]), w.get(n.o()), null, y.rowSlice(range[0], range[1]));
                        }
                    }
                    if (kept.count() > 0) {
                        try (Tensor ac = b.allocate(Shape.of(nv, (long) kept.heads.length * hd))) {
                            for (int i = 0; i < kept.heads.length; i++) {
                                b.copyBlock(attn, p, kept.heads[i] * hd, ac, 0, i * hd, nv, hd);
                            }
                            b.linear(ac, kept.wo, null, y.rowSlice(p, nv));
                        }
                    } // else: y's visual rows stay 0 (allocate zero-fills): no head does visual work here
                } else {
                    b.linear(xn, w.get(n.q()), null, q);
                    b.linear(xn, w.get(n.k()), null, k);
                    b.linear(xn, w.get(n.v()), null, v);
                    b.rotary(q, spec.numHeads(), hd, s.positions, spec.ropeTheta());
                    b.rotary(k, spec.numKvHeads(), hd, s.positions, spec.ropeTheta());
                    if (layout == null) {
                        b.attention(q, k, v, attn, shape, new int[] {0}, new int[] {t}, AttentionObserver.NONE);
                    } else {
                        b.visualMaskedAttention(q, k, v, attn, shape, layout, active, mode != VisualExecution.EXACT,
                                AttentionObserver.NONE);
                    }
                    b.linear(attn, w.get(n.o()), null, y);
                }
                b.add(hidden, y, hidden);
                // SwiGLU MLP on every row
                int width = w.get(n.dense().gate()).rows();
                b.rmsNorm(hidden, w.get(n.postNorm()), spec.rmsNormEps(), xn);
                try (Tensor g = b.allocate(Shape.of(t, width)); Tensor u = b.allocate(Shape.of(t, width))) {
                    b.linear(xn, w.get(n.dense().gate()), null, g);
                    b.linear(xn, w.get(n.dense().up()), null, u);
                    b.siluMul(g, u, g);
                    b.linear(g, w.get(n.dense().down()), null, y);
                }
                b.add(hidden, y, hidden);
            }
        } finally {
            w.values().forEach(Tensor::close);
        }
    }

    private static int count(boolean[] flags) {
        int c = 0;
        for (boolean f : flags) {
            if (f) {
                c++;
            }
        }
        return c;
    }

    /**
     * Final norm and lm_head on text hidden rows [n, hidden], then log-softmax in fp64: log-probabilities
     * [n][vocab].
     */
    public static double[][] logProbs(Backend b, ModelSpec spec, Tensor finalNorm, Tensor lmHead, FloatTensor textHidden) {
        int n = textHidden.rows(), vocab = spec.vocabSize();
        double[][] out = new double[n][];
        try (Tensor x = b.upload(textHidden);
             Tensor xn = b.allocate(Shape.of(n, spec.hiddenSize()));
             Tensor logits = b.allocate(Shape.of(n, vocab))) {
            b.rmsNorm(x, finalNorm, spec.rmsNormEps(), xn);
            b.linear(xn, lmHead, null, logits);
            try (FloatTensor host = b.toHost(logits)) {
                for (int r = 0; r < n; r++) {
                    float[] row = host.row(r);
                    double max = Double.NEGATIVE_INFINITY;
                    for (float v : row) {
                        max = Math.max(max, v);
                    }
                    double sum = 0;
                    for (float v : row) {
                        sum += Math.exp(v - max);
                    }
                    double lse = max + Math.log(sum);
                    double[] lp = new double[vocab];
                    for (int j = 0; j < vocab; j++) {
                        lp[j] = row[j] - lse;
                    }
                    out[r] = lp;
                }
            }
        }
        return out;
    }
}
