package io.whittle.methods.camera;

import io.whittle.compute.Backend;
import io.whittle.compute.Routing;
import io.whittle.forward.LayerObserver;
import io.whittle.forward.LayerWeights;
import io.whittle.model.ModelSpec.Mlp;
import io.whittle.tensor.FloatTensor;
import io.whittle.tensor.HostAllocator;
import io.whittle.tensor.Shape;
import io.whittle.tensor.Tensor;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * Scores the micro-experts of one MoE layer while the layer's forward runs: for every group of tokens it takes the
 * MoE block input and the routing the forward itself used ({@link LayerObserver#moeInput}), and for each routed
 * expert hands only the tokens routed to it, with their routing weights, to {@link Backend#microExpertEnergy}; the
 * shared expert gets every token with A = 1 (DeepSeek) or A = sigmoid(shared_expert_gate . x) (Qwen2-MoE).
 *
 * <p>Optionally keeps the block inputs and routing ({@link #captured()}) so that the output error of a compressed
 * layer can be measured on exactly the same tokens, and always accumulates the squared norm of the dense block
 * output.
 */
public final class EnergyScorer implements LayerObserver, AutoCloseable {

    /**
     * One forward group's routing as the forward decided it, for rows [firstRow, firstRow + rows), with the tokens of
     * each expert bucketed once (the error measurement and every expert's Hessians read them).
     */
    public record Group(int firstRow, int rows, Routing routing, Routing.ExpertRows[] byExpert, float[] sharedGate) {
    }

    private final MoePool pool;
    private final LayerWeights weights;
    private final Backend backend;
    private final Tensor[] gates;
    private final Tensor[] ups;
    private final double[][] sumSq;
    private final double[][] maxSq;
    private final long[] tokensPerExpert;
    private final FloatTensor captured;
    private final List<Group> groups = new ArrayList<>();
    private long tokens;
    private double denseOutputSq;
    private long nanos;

    /**
     * @param captureRows total rows of the calibration batch when the inputs should be kept for error measurement,
     *                    or 0 when not
     */
    /**
     * The scorer for one layer of a job, or null for a dense layer (nothing to score). {@code captureRows} MoE
     * inputs are kept for the output-error measurement and Hessians (0 for analysis only).
     */
    public static EnergyScorer forLayer(io.whittle.methods.JobContext ctx, LayerWeights weights, int captureRows) {
        if (!ctx.spec().isMoeLayer(weights.layer())) {
            return null;
        }
        return new EnergyScorer(MoePool.of(ctx.spec(), weights.layer()), weights, ctx.backend(), ctx.allocator(), captureRows);
    }

    public EnergyScorer(MoePool pool, LayerWeights weights, Backend backend, HostAllocator allocator, int captureRows) {
        this.pool = pool;
        this.weights = weights;
        this.backend = backend;
        int groupsCount = pool.groupCount();
        this.gates = new Tensor[groupsCount];
        this.ups = new Tensor[groupsCount];
        this.sumSq = new double[groupsCount][];
        this.maxSq = new double[groupsCount][];
        this.tokensPerExpert = new long[pool.experts()];
        try {
            for (int g = 0; g < groupsCount; g++) {
                Mlp mlp = pool.groupMlp(g);
                gates[g] = backend.upload(weights.get(mlp.gate()));
                ups[g] = backend.upload(weights.get(mlp.up()));
                sumSq[g] = new double[pool.groupWidth(g)];
                maxSq[g] = new double[pool.groupWidth(g)];
            }
            this.captured = captureRows > 0 ? allocator.allocate(Shape.of(captureRows, pool.hidden()), "camera moe inputs") : null;
        } catch (RuntimeException e) {
            close();
            throw e;
        }
    }

    @Override
    public void moeInput(MoeBlockInput input) {
        long t0 = System.nanoTime();
        Tensor x = input.x();
        int rows = x.rows();
        Routing.ExpertRows[] byExpert = input.routing().byExpert();
        for (int g = 0; g < pool.groupCount(); g++) {
            if (pool.isSharedGroup(g)) {
                float[] a = input.sharedGate() != null ? input.sharedGate() : ones(rows);
                backend.microExpertEnergy(x, gates[g], ups[g], a, sumSq[g], maxSq[g]);
                continue;
            }
            int e = pool.expertOfGroup(g);
            Routing.ExpertRows r = byExpert[e];
            tokensPerExpert[e] += r.count();
            if (r.count() == 0) {
                continue;
            }
            try (Tensor xe = backend.allocate(Shape.of(r.count(), x.cols()))) {
                backend.gatherRows(x, r.rows(), xe);
                backend.microExpertEnergy(xe, gates[g], ups[g], r.weights(), sumSq[g], maxSq[g]);
            }
        }
        tokens += rows;
        if (captured != null) {
            try (FloatTensor host = backend.toHost(x)) {
                captured.copyFrom(host, 0, (long) input.firstRow() * pool.hidden(), host.numel());
            }
            groups.add(new Group(input.firstRow(), rows, input.routing(), byExpert,
                    input.sharedGate() == null ? null : input.sharedGate().clone()));
        }
        nanos += System.nanoTime() - t0;
    }

    @Override
    public void moeOutput(Tensor output) {
        try (FloatTensor host = backend.toHost(output)) {
            denseOutputSq += sumOfSquares(host);
        }
    }

    static float[] ones(int n) {
        float[] a = new float[n];
        Arrays.fill(a, 1f);
        return a;
    }

    static double sumOfSquares(FloatTensor t) {
        double s = 0;
        long n = t.numel();
        float[] buf = new float[(int) Math.min(n, 1 << 16)];
        for (long i = 0; i < n; i += buf.length) {
            int m = (int) Math.min(buf.length, n - i);
            t.copyTo(i, buf, 0, m);
            for (int j = 0; j < m; j++) {
                s += (double) buf[j] * buf[j];
            }
        }
        return s;
    }

    /** The layer's measurements in pool order (call after the forward). */
    public LayerEnergy result() {
        int n = pool.size();
        double[] sum = new double[n];
        double[] max = new double[n];
        for (int g = 0; g < pool.groupCount(); g++) {
            System.arraycopy(sumSq[g], 0, sum, pool.groupOffset(g), pool.groupWidth(g));
            System.arraycopy(maxSq[g], 0, max, pool.groupOffset(g), pool.groupWidth(g));
        }
        return new LayerEnergy(pool, sum, max, pool.downNormsSquared(weights, backend), tokensPerExpert.clone(), tokens);
    }

    public MoePool pool() {
        return pool;
    }

    /** The kept MoE block inputs [T, hidden] (null when not capturing). */
    public FloatTensor captured() {
        return captured;
    }

    /** The kept routing decisions, one per forward group, in row order. */
    public List<Group> groups() {
        return groups;
    }

    /** Sum over all tokens of ||y_dense(t)||^2, the dense MoE block output. */
    public double denseOutputSquared() {
        return denseOutputSq;
    }

    /** Time spent scoring (inside the forward's callbacks). */
    public double seconds() {
        return nanos / 1e9;
    }

    @Override
    public void close() {
        for (Tensor[] ts : new Tensor[][] {gates, ups}) {
            for (Tensor t : ts) {
                if (t != null) {
                    t.close();
                }
            }
        }
        if (captured != null) {
            captured.close();
        }
    }
}
