package io.whittle.methods.wgsef;

import java.util.Arrays;
import java.util.Random;

/**
 * A test instance of the operator: explicit group vectors x_j (FP64), weights d_j and the helpers the tests need
 * (norms, applying scales, inner products). Deliberately independent of {@link GroupPartition}.
 */
final class GroupInstance {

    final double[][] x;
    final double[] d;

    GroupInstance(double[][] x, double[] d) {
        this.x = x;
        this.d = d;
    }

    static GroupInstance singletons(double... v) {
        double[][] x = new double[v.length][];
        for (int i = 0; i < v.length; i++) {
            x[i] = new double[] {v[i]};
        }
        return new GroupInstance(x, ones(v.length));
    }

    static double[] ones(int m) {
        double[] d = new double[m];
        Arrays.fill(d, 1);
        return d;
    }

    /** Random groups of sizes 1..maxSize, weights in [0.2, 5] (or 1), some zero groups when {@code zeros}. */
    static GroupInstance random(Random rnd, int m, int maxSize, boolean weighted, boolean zeros) {
        double[][] x = new double[m][];
        double[] d = new double[m];
        for (int j = 0; j < m; j++) {
            x[j] = new double[1 + rnd.nextInt(maxSize)];
            boolean zero = zeros && rnd.nextInt(6) == 0;
            double scale = Math.exp(rnd.nextGaussian());
            for (int i = 0; i < x[j].length; i++) {
                x[j][i] = zero ? 0 : scale * rnd.nextGaussian();
            }
            d[j] = weighted ? 0.2 + 4.8 * rnd.nextDouble() : 1;
        }
        return new GroupInstance(x, d);
    }

    int m() {
        return x.length;
    }

    double[] norms() {
        return norms(x);
    }

    static double[] norms(double[][] v) {
        double[] a = new double[v.length];
        for (int j = 0; j < v.length; j++) {
            double s = 0;
            for (double e : v[j]) {
                s += e * e;
            }
            a[j] = Math.sqrt(s);
        }
        return a;
    }

    double[][] scaled(double[] c) {
        double[][] z = new double[x.length][];
        for (int j = 0; j < x.length; j++) {
            z[j] = x[j].clone();
            for (int i = 0; i < z[j].length; i++) {
                z[j][i] *= c[j];
            }
        }
        return z;
    }

    double[][] prox(int k, double lambda, RootFinder finder) {
        return scaled(Wgsef.proxScales(norms(), d, k, lambda, finder, 42).scale());
    }

    GroupInstance with(double[][] nx) {
        return new GroupInstance(nx, d);
    }

    static double dot(double[][] a, double[][] b) {
        double s = 0;
        for (int j = 0; j < a.length; j++) {
            for (int i = 0; i < a[j].length; i++) {
                s += a[j][i] * b[j][i];
            }
        }
        return s;
    }

    static double[][] axpy(double alpha, double[][] a, double[][] b) { // alpha * a + b
        double[][] out = new double[a.length][];
        for (int j = 0; j < a.length; j++) {
            out[j] = new double[a[j].length];
            for (int i = 0; i < a[j].length; i++) {
                out[j][i] = alpha * a[j][i] + b[j][i];
            }
        }
        return out;
    }

    static double norm(double[][] a) {
        return Math.sqrt(dot(a, a));
    }

    /** ||a - b|| / ||b|| (or ||a - b|| when b = 0). */
    static double relErr(double[][] a, double[][] b) {
        double nb = norm(b);
        double diff = norm(axpy(-1, b, a));
        return nb == 0 ? diff : diff / nb;
    }
}
