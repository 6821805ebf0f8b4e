package io.whittle.methods.wgsef;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * FISTA for min_W' sum_m omega_m f_m(W'_m) + lambda S_{k,d}(W') over the members of a partition (wgsef.md §7):
 * step 1/L with L = max_m omega_m (lambda_max(H_m) + delta_m) (the Hessian is block diagonal over members), the
 * gradient by one SGEMM per member, the WGSEF prox with parameter mu = lambda / L, and Nesterov momentum with the
 * gradient-based adaptive restart of O'Donoghue and Candes (restart when (y - x+)^T (x+ - x) > 0), which keeps the
 * iteration monotone-ish without a second objective evaluation.
 */
final class Fista {

    private final GroupPartition partition;
    private final List<MemberObjective> objectives;
    private final double groupWeight;
    private final int level;
    private final RootFinder finder;
    private final long seed;
    final double lipschitz;
    float[][] z;
    private float[][] y;
    private float[][] next;
    private final float[][] scratch;
    private double t = 1;
    private Wgsef.Summary last;

    Fista(GroupPartition partition, List<MemberObjective> objectives, double groupWeight, int level, RootFinder finder,
          long seed, double lipschitz) {
        this.partition = partition;
        this.objectives = objectives;
        this.groupWeight = groupWeight;
        this.level = level;
        this.finder = finder;
        this.seed = seed;
        this.lipschitz = lipschitz;
        int n = objectives.size();
        z = new float[n][];
        y = new float[n][];
        next = new float[n][];
        scratch = new float[n][];
        for (int i = 0; i < n; i++) {
            float[] w = objectives.get(i).w;
            z[i] = w.clone();
            y[i] = w.clone();
            next[i] = new float[w.length];
            scratch[i] = new float[w.length];
        }
    }

    /** Restarts the momentum at the current iterate (warm start of a new lambda stage). */
    void resetMomentum() {
        for (int i = 0; i < z.length; i++) {
            System.arraycopy(z[i], 0, y[i], 0, z[i].length);
        }
        t = 1;
    }

    /** One iteration with prox parameter {@code mu}; returns ||x+ - x|| / ||x+||. */
    double step(double mu) {
        for (int i = 0; i < objectives.size(); i++) {
            MemberObjective obj = objectives.get(i);
            float[] yy = y[i];
            float[] w = obj.w;
            float[] s = scratch[i];
            for (int e = 0; e < s.length; e++) {
                s[e] = yy[e] - w[e];
            }
            obj.timesH(s, s);
            double c = obj.weight / lipschitz;
            double delta = obj.delta;
            float[] nx = next[i];
            for (int e = 0; e < nx.length; e++) {
                nx[e] = (float) (yy[e] - c * (s[e] + delta * (yy[e] - w[e])));
            }
        }
        last = Wgsef.prox(partition, groupWeight, level, mu, finder, seed, Arrays.asList(next));
        double restart = 0;
        double diff2 = 0;
        double norm2 = 0;
        for (int i = 0; i < z.length; i++) {
            float[] x0 = z[i];
            float[] x1 = next[i];
            float[] yy = y[i];
            for (int e = 0; e < x1.length; e++) {
                double step = (double) x1[e] - x0[e];
                restart += ((double) yy[e] - x1[e]) * step;
                diff2 += step * step;
                norm2 += (double) x1[e] * x1[e];
            }
        }
        if (restart > 0) {
            t = 1;
        }
        double tNext = 0.5 * (1 + Math.sqrt(1 + 4 * t * t));
        double beta = (t - 1) / tNext;
        t = tNext;
        for (int i = 0; i < z.length; i++) {
            float[] x0 = z[i];
            float[] x1 = next[i];
            float[] yy = y[i];
            for (int e = 0; e < x1.length; e++) {
                yy[e] = (float) (x1[e] + beta * ((double) x1[e] - x0[e]));
            }
        }
        float[][] swap = z;
        z = next;
        next = swap;
        return norm2 > 0 ? Math.sqrt(diff2 / norm2) : Math.sqrt(diff2);
    }

    /** The prox summary of the last step (non-zero groups of the current iterate, gap condition). */
    Wgsef.Summary lastSummary() {
        return last;
    }

    List<float[]> iterate() {
        return new ArrayList<>(Arrays.asList(z));
    }
}
