package io.whittle.methods.camera;

import io.whittle.compute.Backend;
import io.whittle.compute.Routing;
import io.whittle.tensor.FloatTensor;
import io.whittle.tensor.Shape;
import io.whittle.tensor.Tensor;
import java.util.List;

/**
 * Measures how much compressing a layer changed its MoE block output on the calibration tokens,
 * {@code ||y - y_dense|| / ||y_dense||} over all tokens, from the block inputs and routing an {@link EnergyScorer}
 * kept. The change is computed directly as {@code Delta(t) = sum_groups A_g(t) * sum_terms sign * mlp_term(x_t)}
 * with the routing of the dense forward (compression never touches the router): for pruning the single term is the
 * pruned micro-experts' own SwiGLU (removing micro-expert j changes the output by exactly -phi_j(t) w_j^down), for
 * quantization it is the new expert minus the old one.
 */
public final class MoeOutputError {

    /** One SwiGLU term {@code sign * down(silu(gate x) * up x)}; tensors belong to the backend. */
    public record Term(Tensor gate, Tensor up, Tensor down, float sign) {
    }

    private MoeOutputError() {
    }

    /**
     * Sum over tokens of ||Delta(t)||^2 for the pool's groups, where {@code terms.get(g)} lists the terms of group g
     * (empty or null when the group did not change).
     */
    public static double deltaSquared(EnergyScorer scorer, List<List<Term>> terms, Backend b) {
        MoePool pool = scorer.pool();
        double total = 0;
        for (EnergyScorer.Group grp : scorer.groups()) {
            int rows = grp.rows();
            try (FloatTensor xHost = scorer.captured().rowSlice(grp.firstRow(), rows);
                 Tensor x = b.upload(xHost);
                 Tensor delta = b.allocate(Shape.of(rows, pool.hidden()))) {
                Routing.ExpertRows[] byExpert = grp.byExpert();
                for (int g = 0; g < pool.groupCount(); g++) {
                    List<Term> t = terms.get(g);
                    if (t == null || t.isEmpty()) {
                        continue;
                    }
                    if (pool.isSharedGroup(g)) {
                        try (Tensor ys = b.allocate(Shape.of(rows, pool.hidden()))) {
                            apply(b, t, x, ys);
                            if (grp.sharedGate() != null) {
                                b.scaleRows(ys, grp.sharedGate());
                            }
                            b.add(delta, ys, delta);
                        }
                        continue;
                    }
                    Routing.ExpertRows r = byExpert[pool.expertOfGroup(g)];
                    if (r.count() == 0) {
                        continue;
                    }
                    try (Tensor xe = b.allocate(Shape.of(r.count(), pool.hidden()));
                         Tensor ye = b.allocate(Shape.of(r.count(), pool.hidden()))) {
                        b.gatherRows(x, r.rows(), xe);
                        apply(b, t, xe, ye);
                        b.scatterAddRows(ye, r.rows(), r.weights(), delta);
                    }
                }
                try (FloatTensor h = b.toHost(delta)) {
                    total += EnergyScorer.sumOfSquares(h);
                }
            }
        }
        return total;
    }

    /** out = sum over terms of sign * down(silu(gate x) * up x). */
    private static void apply(Backend b, List<Term> terms, Tensor x, Tensor out) {
        int n = x.rows();
        boolean first = true;
        for (Term term : terms) {
            int width = term.gate().rows();
            try (Tensor g = b.allocate(Shape.of(n, width));
                 Tensor u = b.allocate(Shape.of(n, width));
                 Tensor y = b.allocate(Shape.of(n, out.cols()))) {
                b.linear(x, term.gate(), null, g);
                b.linear(x, term.up(), null, u);
                b.siluMul(g, u, g);
                b.linear(g, term.down(), null, y);
                if (term.sign() != 1f) {
                    b.scaleRows(y, filled(n, term.sign()));
                }
                if (first) {
                    b.copy(y, 0, out, 0, y.numel());
                    first = false;
                } else {
                    b.add(out, y, out);
                }
            }
        }
    }

    private static float[] filled(int n, float v) {
        float[] a = new float[n];
        java.util.Arrays.fill(a, v);
        return a;
    }

    /**
     * ||y - y_dense|| / ||y_dense|| from the summed squares: 0 when nothing changed, NaN (reported as null) only when
     * the dense output itself is 0 on every token and the compressed one is not.
     */
    public static double relative(double deltaSquared, double denseSquared) {
        if (deltaSquared == 0) {
            return 0;
        }
        return denseSquared > 0 ? Math.sqrt(deltaSquared / denseSquared) : Double.NaN;
    }
}
