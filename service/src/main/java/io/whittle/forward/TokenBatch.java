package io.whittle.forward;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;

/**
 * Calibration or evaluation sequences packed row after row: sequence s occupies rows
 * [start(s), start(s) + length(s)) of every [T, hidden] activation, and its tokens have positions 0..length-1.
 */
public final class TokenBatch {

    private final List<int[]> sequences;
    private final int[] starts;
    private final int[] lengths;
    private final int totalTokens;

    public TokenBatch(List<int[]> sequences) {
        if (sequences.isEmpty()) {
            throw new IllegalArgumentException("no sequences: calibration needs at least one");
        }
        this.sequences = Collections.unmodifiableList(new ArrayList<>(sequences));
        this.starts = new int[sequences.size()];
        this.lengths = new int[sequences.size()];
        long total = 0;
        for (int s = 0; s < sequences.size(); s++) {
            int[] seq = sequences.get(s);
            if (seq.length == 0) {
                throw new IllegalArgumentException("sequence " + s + " is empty");
            }
            starts[s] = Math.toIntExact(total);
            lengths[s] = seq.length;
            total += seq.length;
        }
        this.totalTokens = Math.toIntExact(total);
    }

    public int sequenceCount() {
        return sequences.size();
    }

    public int totalTokens() {
        return totalTokens;
    }

    public int[] sequence(int s) {
        return sequences.get(s).clone();
    }

    public List<int[]> sequences() {
        return sequences;
    }

    public int start(int s) {
        return starts[s];
    }

    public int length(int s) {
        return lengths[s];
    }

    /** Every token id, row order. */
    public int[] tokenIds() {
        int[] out = new int[totalTokens];
        for (int s = 0; s < sequences.size(); s++) {
            System.arraycopy(sequences.get(s), 0, out, starts[s], lengths[s]);
        }
        return out;
    }

    /** Positions of every row (0-based within its sequence). */
    public int[] positions() {
        int[] out = new int[totalTokens];
        for (int s = 0; s < sequences.size(); s++) {
            for (int i = 0; i < lengths[s]; i++) {
                out[starts[s] + i] = i;
            }
        }
        return out;
    }

    /** Next-token targets per row: the following token of the same sequence, or -1 at a sequence's last row. */
    public int[] nextTokenTargets() {
        int[] out = new int[totalTokens];
        for (int s = 0; s < sequences.size(); s++) {
            int[] seq = sequences.get(s);
            for (int i = 0; i < seq.length; i++) {
                out[starts[s] + i] = i + 1 < seq.length ? seq[i + 1] : -1;
            }
        }
        return out;
    }

    /**
     * Groups of whole consecutive sequences with at most {@code maxTokens} rows each (a longer sequence forms a
     * group of its own); a layer runs group by group to bound activation memory.
     */
    public List<int[]> groups(int maxTokens) {
        List<int[]> groups = new ArrayList<>();
        int first = 0;
        int tokens = 0;
        for (int s = 0; s < sequences.size(); s++) {
            if (s > first && tokens + lengths[s] > maxTokens) {
                groups.add(new int[] {first, s});
                first = s;
                tokens = 0;
            }
            tokens += lengths[s];
        }
        groups.add(new int[] {first, sequences.size()});
        return groups;
    }
}
