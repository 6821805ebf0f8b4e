package io.whittle.methods.camera.quant;

import java.math.BigDecimal;
import java.math.RoundingMode;
import java.util.Arrays;
import java.util.Comparator;

/**
 * CAMERA-Q's bit classes: widths {@code bits} with the fractions of micro-experts that get them, the highest
 * energies getting the most bits (defaults {@code 3,2,1} at {@code 0.125,0.75,0.125}). Pairs are kept sorted by
 * width, highest first, whatever order they were given in.
 *
 * <p><b>Class sizes.</b> For N micro-experts the classes take consecutive runs of the energy ranking, with
 * boundaries {@code B_k = floor(N * (p_1 + ... + p_k))} computed in exact decimal arithmetic on the fractions as
 * written ({@link BigDecimal#valueOf(double)}, so 0.1 is 1/10) and {@code B_S = N}; class k has
 * {@code B_k - B_(k-1)} members. The counts sum exactly to N, each is within one of {@code N * p_k}, and because
 * widths decrease the achieved payload {@code sum b_k c_k / N} never exceeds the requested {@code sum b_k p_k}.
 */
public final class BitAllocation {

    /** Tolerance on the sum of fractions. */
    public static final double SUM_TOLERANCE = 1e-6;

    private final int[] bits;
    private final double[] fractions;

    private BitAllocation(int[] bits, double[] fractions) {
        this.bits = bits;
        this.fractions = fractions;
    }

    /** The defaults: 3,2,1 bits at 0.125,0.75,0.125 (2.0 bits payload). */
    public static BitAllocation defaults() {
        return of(new int[]{3, 2, 1}, new double[]{0.125, 0.75, 0.125});
    }

    /**
     * Validates and sorts: as many widths as fractions, widths distinct and in 1..8, fractions finite in [0, 1]
     * and summing to 1 (within {@link #SUM_TOLERANCE}).
     */
    public static BitAllocation of(int[] bits, double[] fractions) {
        if (bits.length == 0) {
            throw new IllegalArgumentException("bits must list at least one width");
        }
        if (bits.length != fractions.length) {
            throw new IllegalArgumentException("bits has " + bits.length + " entries but fractions has " + fractions.length
                    + "; give one fraction per width");
        }
        double sum = 0;
        for (int i = 0; i < bits.length; i++) {
            if (bits[i] < QuantScheme.MIN_BITS || bits[i] > QuantScheme.MAX_BITS) {
                throw new IllegalArgumentException("bits must be in " + QuantScheme.MIN_BITS + ".." + QuantScheme.MAX_BITS
                        + ", got " + bits[i]);
            }
            for (int j = 0; j < i; j++) {
                if (bits[j] == bits[i]) {
                    throw new IllegalArgumentException("bits lists width " + bits[i] + " twice; widths must be distinct");
                }
            }
            if (!(fractions[i] >= 0 && fractions[i] <= 1)) {
                throw new IllegalArgumentException("fractions must be in [0, 1], got " + fractions[i]);
            }
            sum += fractions[i];
        }
        if (Math.abs(sum - 1) > SUM_TOLERANCE) {
            throw new IllegalArgumentException("fractions must sum to 1, got " + sum + " (" + Arrays.toString(fractions) + ")");
        }
        Integer[] idx = new Integer[bits.length];
        for (int i = 0; i < idx.length; i++) {
            idx[i] = i;
        }
        Arrays.sort(idx, Comparator.comparingInt((Integer i) -> -bits[i]));
        int[] b = new int[bits.length];
        double[] f = new double[bits.length];
        for (int k = 0; k < idx.length; k++) {
            b[k] = bits[idx[k]];
            f[k] = fractions[idx[k]];
        }
        return new BitAllocation(b, f);
    }

    /** Parses comma-separated lists such as {@code "3,2,1"} and {@code "0.125,0.75,0.125"}. */
    public static BitAllocation parse(String bits, String fractions) {
        return of(parseInts("bits", bits), parseDoubles("fractions", fractions));
    }

    private static int[] parseInts(String what, String text) {
        String[] parts = splitList(what, text);
        int[] out = new int[parts.length];
        for (int i = 0; i < parts.length; i++) {
            try {
                out[i] = Integer.parseInt(parts[i]);
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException(what + ": '" + parts[i] + "' is not an integer");
            }
        }
        return out;
    }

    private static double[] parseDoubles(String what, String text) {
        String[] parts = splitList(what, text);
        double[] out = new double[parts.length];
        for (int i = 0; i < parts.length; i++) {
            try {
                out[i] = Double.parseDouble(parts[i]);
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException(what + ": '" + parts[i] + "' is not a number");
            }
        }
        return out;
    }

    private static String[] splitList(String what, String text) {
        if (text == null || text.isBlank()) {
            throw new IllegalArgumentException(what + " must be a comma-separated list, got an empty value");
        }
        String[] parts = text.split(",");
        for (int i = 0; i < parts.length; i++) {
            parts[i] = parts[i].trim();
        }
        return parts;
    }

    /** Widths, highest first. */
    public int[] bits() {
        return bits.clone();
    }

    /** Fractions paired with {@link #bits()}. */
    public double[] fractions() {
        return fractions.clone();
    }

    public int classCount() {
        return bits.length;
    }

    /** True when a single width covers every micro-expert (a class of fraction 1). */
    public boolean isSingleWidth() {
        int nonEmpty = 0;
        for (double f : fractions) {
            nonEmpty += f > 0 ? 1 : 0;
        }
        return nonEmpty == 1;
    }

    /** Requested payload bits per weight, {@code sum b_k p_k}. */
    public double payloadBitsPerWeight() {
        double s = 0;
        for (int k = 0; k < bits.length; k++) {
            s += bits[k] * fractions[k];
        }
        return s;
    }

    /** Class sizes for {@code n} micro-experts (see the class comment), in {@link #bits()} order. */
    public long[] classCounts(long n) {
        if (n < 0) {
            throw new IllegalArgumentException("micro-expert count must be >= 0, got " + n);
        }
        long[] counts = new long[bits.length];
        BigDecimal cum = BigDecimal.ZERO;
        BigDecimal bigN = BigDecimal.valueOf(n);
        long previous = 0;
        for (int k = 0; k < bits.length; k++) {
            cum = cum.add(BigDecimal.valueOf(fractions[k]));
            long boundary = k == bits.length - 1 ? n
                    : Math.min(n, bigN.multiply(cum).setScale(0, RoundingMode.FLOOR).longValueExact());
            boundary = Math.max(boundary, previous);
            counts[k] = boundary - previous;
            previous = boundary;
        }
        return counts;
    }

    /**
     * The width of every micro-expert of one ranking scope (a layer): sorted by energy, highest first, ties by
     * lower index, the first {@code c_1} get {@code bits[0]}, the next {@code c_2} get {@code bits[1]}, and so on.
     */
    public int[] assign(float[] energies) {
        Integer[] idx = new Integer[energies.length];
        for (int j = 0; j < energies.length; j++) {
            if (Float.isNaN(energies[j])) {
                throw new IllegalArgumentException("energy of micro-expert " + j + " is NaN");
            }
            idx[j] = j;
        }
        Arrays.sort(idx, (a, b) -> energies[a] != energies[b] ? Float.compare(energies[b], energies[a]) : Integer.compare(a, b));
        long[] counts = classCounts(energies.length);
        int[] out = new int[energies.length];
        int pos = 0;
        for (int k = 0; k < counts.length; k++) {
            for (long c = 0; c < counts[k]; c++) {
                out[idx[pos++]] = bits[k];
            }
        }
        return out;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof BitAllocation a && Arrays.equals(a.bits, bits) && Arrays.equals(a.fractions, fractions);
    }

    @Override
    public int hashCode() {
        return 31 * Arrays.hashCode(bits) + Arrays.hashCode(fractions);
    }

    @Override
    public String toString() {
        return "bits " + Arrays.toString(bits) + " at " + Arrays.toString(fractions);
    }
}
