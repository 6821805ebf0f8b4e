package io.whittle.methods.visual;

import java.util.ArrayList;
import java.util.List;

/**
 * Non-active visual head selection (YOPO): for layer l >= keepLayers, head h, sample s, the ratio of attention
 * mass on visual keys to mass on all other keys (summed over the score rows); a head keeps its visual work when
 * its ratio exceeds alpha in more than the {@code vote} fraction of the samples. Layers below keepLayers keep
 * every head. Alternatively the alpha that keeps a target average of heads per layer (over all layers) is found
 * exactly: head (l, h) is kept iff alpha is below its m-th largest ratio, m the smallest sample count that is
 * more than the vote fraction, so sorting those thresholds gives every achievable count.
 */
public final class HeadSelection {

    private HeadSelection() {
    }

    /** The least number of samples that is more than {@code vote} of {@code samples}. */
    static int minVotes(int samples, double vote) {
        for (int c = 1; c <= samples; c++) {
            if ((double) c / samples > vote) {
                return c;
            }
        }
        return samples + 1;
    }

    /** keep[l][h] from ratios[s][l][h]. */
    public static boolean[][] vote(double[][][] ratios, double alpha, double vote, int keepLayers) {
        int samples = ratios.length, layers = ratios[0].length, heads = ratios[0][0].length;
        int need = minVotes(samples, vote);
        boolean[][] keep = new boolean[layers][heads];
        for (int l = 0; l < layers; l++) {
            for (int h = 0; h < heads; h++) {
                if (l < keepLayers) {
                    keep[l][h] = true;
                    continue;
                }
                int votes = 0;
                for (double[][] sample : ratios) {
                    if (sample[l][h] > alpha) {
                        votes++;
                    }
                }
                keep[l][h] = votes >= need;
            }
        }
        return keep;
    }

    /** Head (l, h)'s threshold: it is kept exactly when alpha is below this (its m-th largest ratio). */
    static double threshold(double[][][] ratios, int l, int h, int need) {
        if (need > ratios.length) {
            return Double.NEGATIVE_INFINITY;
        }
        double[] r = new double[ratios.length];
        for (int s = 0; s < r.length; s++) {
            r[s] = ratios[s][l][h];
        }
        java.util.Arrays.sort(r);
        return r[r.length - need];
    }

    /**
     * The alpha whose vote keeps {@code headsKept} heads per layer on average over all layers (the layers below
     * keepLayers count with all their heads), or the nearest achievable average when ties make it impossible.
     */
    public static double alphaFor(double[][][] ratios, double vote, int keepLayers, double headsKept) {
        int layers = ratios[0].length, heads = ratios[0][0].length;
        int need = minVotes(ratios.length, vote);
        int forced = Math.min(keepLayers, layers) * heads;
        List<Double> thresholds = new ArrayList<>();
        for (int l = keepLayers; l < layers; l++) {
            for (int h = 0; h < heads; h++) {
                thresholds.add(threshold(ratios, l, h, need));
            }
        }
        thresholds.sort(java.util.Comparator.reverseOrder());
        long wanted = Math.round(headsKept * layers) - forced;
        if (thresholds.isEmpty() || wanted <= 0) {
            return thresholds.isEmpty() ? 0 : Math.max(0, thresholds.get(0)); // alpha at the top threshold keeps none
        }
        if (wanted >= thresholds.size()) {
            double lowest = thresholds.get(thresholds.size() - 1);
            return lowest > 0 ? lowest / 2 : 0; // keeps every head with any visual attention
        }
        double above = thresholds.get((int) wanted - 1), below = thresholds.get((int) wanted);
        return Math.max(0, (above + below) / 2);
    }

    /** Mean ratio over samples, [l][h]. */
    public static double[][] meanRatios(double[][][] ratios) {
        int layers = ratios[0].length, heads = ratios[0][0].length;
        double[][] m = new double[layers][heads];
        for (double[][] s : ratios) {
            for (int l = 0; l < layers; l++) {
                for (int h = 0; h < heads; h++) {
                    m[l][h] += s[l][h] / ratios.length;
                }
            }
        }
        return m;
    }

    public static double averageKept(boolean[][] keep) {
        int n = 0;
        for (boolean[] row : keep) {
            for (boolean b : row) {
                n += b ? 1 : 0;
            }
        }
        return (double) n / keep.length;
    }
}
