package io.whittle.forward;

import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * What a pipeline run measured: next-token NLL sums per sequence (when asked for), time per stage and the peak
 * host memory the run's allocator saw.
 */
public final class PipelineResult {

    private final double[] nllSum;
    private final int[] predicted;
    private final Map<String, Double> stageSeconds;
    private final long peakHostBytes;

    PipelineResult(double[] nllSum, int[] predicted, Map<String, Double> stageSeconds, long peakHostBytes) {
        this.nllSum = nllSum;
        this.predicted = predicted;
        this.stageSeconds = Collections.unmodifiableMap(new LinkedHashMap<>(stageSeconds));
        this.peakHostBytes = peakHostBytes;
    }

    public boolean hasNll() {
        return nllSum != null;
    }

    /** Number of predicted positions (tokens with a next token) over all sequences. */
    public long predictedTokens() {
        long n = 0;
        for (int c : predicted) {
            n += c;
        }
        return n;
    }

    /** Mean NLL (natural log) over all predicted positions of all sequences. */
    public double meanNll() {
        double s = 0;
        for (double v : nllSum) {
            s += v;
        }
        return s / predictedTokens();
    }

    public double perplexity() {
        return Math.exp(meanNll());
    }

    public double[] perSequenceMeanNll() {
        double[] out = new double[nllSum.length];
        for (int i = 0; i < out.length; i++) {
            out[i] = predicted[i] == 0 ? Double.NaN : nllSum[i] / predicted[i];
        }
        return out;
    }

    public Map<String, Double> stageSeconds() {
        return stageSeconds;
    }

    public long peakHostBytes() {
        return peakHostBytes;
    }
}
