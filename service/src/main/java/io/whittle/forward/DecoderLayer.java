package io.whittle.forward;

import io.whittle.compute.AttentionShape;
import io.whittle.compute.Backend;
import io.whittle.compute.Routing;
import io.whittle.model.ModelSpec;
import io.whittle.model.ModelSpec.LayerNames;
import io.whittle.model.ModelSpec.Mlp;
import io.whittle.model.ModelSpec.QkNorm;
import io.whittle.tensor.FloatTensor;
import io.whittle.tensor.Shape;
import io.whittle.tensor.Tensor;
import java.util.HashMap;
import java.util.Map;

/**
 * One decoder layer exactly as transformers computes it, in fp32: pre-norm attention (q/k/v biases, q/k norm,
 * rotate_half RoPE, causal GQA) and a pre-norm SwiGLU MLP or MoE block (softmax routing over all experts, top-k,
 * family renormalisation rule, routed sum in expert order, shared expert gated or not), each added to the
 * residual. Works on any {@link Backend}.
 */
public final class DecoderLayer {

    private final ModelSpec spec;
    private final LayerNames names;

    public DecoderLayer(ModelSpec spec, int layer) {
        this.spec = spec;
        this.names = spec.layer(layer);
    }

    public LayerNames names() {
        return names;
    }

    /**
     * Runs the layer on {@code hidden} [T, hidden] for the sequences of {@code batch} and writes the result to
     * {@code out} (which may not alias {@code hidden}). Runs group by group of at most {@code maxGroupTokens} rows.
     */
    public void forward(Backend backend, LayerWeights weights, Tensor hidden, Tensor out, TokenBatch batch,
                        int maxGroupTokens, LayerObserver observer) {
        try (Uploaded w = upload(backend, weights)) {
            forward(backend, w, hidden, out, batch, maxGroupTokens, observer);
        }
    }

    /** The layer's weights on a backend (views on the CPU, device copies on a GPU); close to release them. */
    public static final class Uploaded implements AutoCloseable {
        private final Map<String, Tensor> tensors = new HashMap<>();

        Tensor get(String name) {
            return tensors.get(name);
        }

        @Override
        public void close() {
            tensors.values().forEach(Tensor::close);
            tensors.clear();
        }
    }

    /** Uploads every tensor of the layer once, for several forwards over the same weights. */
    public static Uploaded upload(Backend backend, LayerWeights weights) {
        Uploaded u = new Uploaded();
        try {
            for (String n : weights.names()) {
                u.tensors.put(n, backend.upload(weights.get(n)));
            }
        } catch (RuntimeException e) {
            u.close();
            throw e;
        }
        return u;
    }

    /** As {@link #forward(Backend, LayerWeights, Tensor, Tensor, TokenBatch, int, LayerObserver)} on uploaded weights. */
    public void forward(Backend backend, Uploaded weights, Tensor hidden, Tensor out, TokenBatch batch, int maxGroupTokens,
                        LayerObserver observer) {
        LayerObserver obs = observer == null ? LayerObserver.NONE : observer;
        Map<String, Tensor> w = weights.tensors;
        int[] positions = batch.positions();
        for (int[] g : batch.groups(maxGroupTokens)) {
            int firstRow = batch.start(g[0]);
            int rows = batch.start(g[1] - 1) + batch.length(g[1] - 1) - firstRow;
            int[] starts = new int[g[1] - g[0]];
            int[] lengths = new int[starts.length];
            for (int s = g[0]; s < g[1]; s++) {
                starts[s - g[0]] = batch.start(s) - firstRow;
                lengths[s - g[0]] = batch.length(s);
            }
            int[] pos = java.util.Arrays.copyOfRange(positions, firstRow, firstRow + rows);
            Tensor hIn = hidden.rowSlice(firstRow, rows);
            Tensor hOut = out.rowSlice(firstRow, rows);
            forwardGroup(backend, w, hIn, hOut, starts, lengths, pos, firstRow, obs);
        }
    }

    private void forwardGroup(Backend b, Map<String, Tensor> w, Tensor hidden, Tensor out, int[] starts, int[] lengths,
                              int[] positions, int firstRow, LayerObserver obs) {
        int t = hidden.rows();
        int hiddenSize = spec.hiddenSize();
        int qDim = spec.numHeads() * spec.headDim();
        int kvDim = spec.numKvHeads() * spec.headDim();
        // attention block: out = hidden + o_proj(attn(rope(qk_norm(q, k)), v))
        try (Tensor xn = b.allocate(Shape.of(t, hiddenSize));
             Tensor q = b.allocate(Shape.of(t, qDim));
             Tensor k = b.allocate(Shape.of(t, kvDim));
             Tensor v = b.allocate(Shape.of(t, kvDim));
             Tensor attn = b.allocate(Shape.of(t, qDim))) {
            b.rmsNorm(hidden, w.get(names.inputNorm()), spec.rmsNormEps(), xn);
            linear(b, w, obs, xn, names.q(), names.qBias(), q);
            linear(b, w, obs, xn, names.k(), names.kBias(), k);
            linear(b, w, obs, xn, names.v(), names.vBias(), v);
            if (spec.qkNorm() == QkNorm.PER_HEAD) {
                Tensor qh = q.reshape(Shape.of((long) t * spec.numHeads(), spec.headDim()));
                Tensor kh = k.reshape(Shape.of((long) t * spec.numKvHeads(), spec.headDim()));
                b.rmsNorm(qh, w.get(names.qNorm()), spec.rmsNormEps(), qh);
                b.rmsNorm(kh, w.get(names.kNorm()), spec.rmsNormEps(), kh);
            } else if (spec.qkNorm() == QkNorm.WHOLE) {
                b.rmsNorm(q, w.get(names.qNorm()), spec.rmsNormEps(), q);
                b.rmsNorm(k, w.get(names.kNorm()), spec.rmsNormEps(), k);
            }
            b.rotary(q, spec.numHeads(), spec.headDim(), positions, spec.ropeTheta());
            b.rotary(k, spec.numKvHeads(), spec.headDim(), positions, spec.ropeTheta());
            b.attention(q, k, v, attn, new AttentionShape(spec.numHeads(), spec.numKvHeads(), spec.headDim()), starts, lengths,
                    obs.attention());
            linear(b, w, obs, attn, names.o(), null, xn); // xn reused as o_proj output
            b.add(hidden, xn, out);
        }
        // MLP block: out = out + mlp(post_attention_layernorm(out))
        try (Tensor xn = b.allocate(Shape.of(t, hiddenSize));
             Tensor y = b.allocate(Shape.of(t, hiddenSize))) {
            b.rmsNorm(out, w.get(names.postNorm()), spec.rmsNormEps(), xn);
            if (names.isMoe()) {
                moe(b, w, obs, xn, y, firstRow);
            } else {
                mlp(b, w, obs, names.dense(), xn, y);
            }
            b.add(out, y, out);
        }
    }

    private static void linear(Backend b, Map<String, Tensor> w, LayerObserver obs, Tensor x, String weight, String bias,
                               Tensor y) {
        if (obs.wantsLinearInput(weight)) {
            obs.linearInput(weight, x);
        }
        b.linear(x, w.get(weight), bias == null ? null : w.get(bias), y);
    }

    /** y = down(silu(gate(x)) * up(x)). */
    private static void mlp(Backend b, Map<String, Tensor> w, LayerObserver obs, Mlp mlp, Tensor x, Tensor y) {
        int t = x.rows();
        int width = w.get(mlp.gate()).rows();
        try (Tensor g = b.allocate(Shape.of(t, width));
             Tensor u = b.allocate(Shape.of(t, width))) {
            linear(b, w, obs, x, mlp.gate(), null, g);
            linear(b, w, obs, x, mlp.up(), null, u);
            b.siluMul(g, u, g);
            linear(b, w, obs, g, mlp.down(), null, y);
        }
    }

    private void moe(Backend b, Map<String, Tensor> w, LayerObserver obs, Tensor x, Tensor y, int firstRow) {
        ModelSpec.Moe moe = spec.moe();
        ModelSpec.MoeNames mn = names.moe();
        int t = x.rows();
        Routing routing;
        try (Tensor logits = b.allocate(Shape.of(t, moe.experts()))) {
            b.linear(x, w.get(mn.router()), null, logits);
            routing = b.route(logits, moe.topK(), moe.renormalize(), moe.renormEpsilon());
        }
        float[] sharedGate = null;
        if (mn.sharedGate() != null) {
            try (Tensor gateLogit = b.allocate(Shape.of(t, 1))) {
                b.linear(x, w.get(mn.sharedGate()), null, gateLogit);
                try (FloatTensor host = b.toHost(gateLogit)) {
                    sharedGate = new float[t];
                    for (int i = 0; i < t; i++) {
                        sharedGate[i] = (float) (1.0 / (1.0 + Math.exp(-host.get(i))));
                    }
                }
            }
        }
        obs.moeInput(new LayerObserver.MoeBlockInput(names.index(), firstRow, x, routing, sharedGate));
        Routing.ExpertRows[] byExpert = routing.byExpert();
        for (int e = 0; e < moe.experts(); e++) {
            Routing.ExpertRows rows = byExpert[e];
            if (rows.count() == 0) {
                continue;
            }
            try (Tensor xe = b.allocate(Shape.of(rows.count(), x.cols()));
                 Tensor ye = b.allocate(Shape.of(rows.count(), x.cols()))) {
                b.gatherRows(x, rows.rows(), xe);
                mlp(b, w, obs, mn.experts().get(e), xe, ye);
                b.scatterAddRows(ye, rows.rows(), rows.weights(), y);
            }
        }
        if (mn.shared() != null) {
            try (Tensor ys = b.allocate(Shape.of(t, x.cols()))) {
                mlp(b, w, obs, mn.shared(), x, ys);
                if (sharedGate != null) {
                    b.scaleRows(ys, sharedGate);
                }
                b.add(y, ys, y);
            }
        }
        obs.moeOutput(y);
    }
}
