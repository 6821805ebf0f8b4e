package io.whittle.methods.wgsef;

/**
 * The {@code keep} parameter: how many groups of a matrix survive, either as a fraction {@code 0 < r <= 1}
 * (k = ceil(r m), wgsef.md §3.3) or as an integer count. Text without a decimal point or exponent ("16") is a
 * count; text with one ("0.25", "1.0") is a fraction.
 */
public record Keep(double fraction, int count) {

    public Keep {
        boolean isFraction = count == 0;
        if (isFraction && !(fraction > 0 && fraction <= 1)) {
            throw new IllegalArgumentException("keep: fraction must be in (0, 1], got " + fraction);
        }
        if (!isFraction && (count < 1 || fraction != 0)) {
            throw new IllegalArgumentException("keep: count must be >= 1, got " + count);
        }
    }

    public static Keep fraction(double r) {
        return new Keep(r, 0);
    }

    public static Keep count(int k) {
        if (k < 1) {
            throw new IllegalArgumentException("keep: count must be >= 1, got " + k);
        }
        return new Keep(0, k);
    }

    /** Parses the {@code keep} parameter. */
    public static Keep parse(String text) {
        if (text == null || text.isBlank()) {
            throw new IllegalArgumentException("keep: missing value; give a fraction in (0, 1] or an integer count >= 1");
        }
        String s = text.trim();
        boolean integral = s.chars().allMatch(ch -> Character.isDigit(ch) || ch == '-' || ch == '+');
        try {
            if (integral) {
                long k = Long.parseLong(s);
                if (k < 1 || k > Integer.MAX_VALUE) {
                    throw new IllegalArgumentException("keep: count must be >= 1, got " + s);
                }
                return count((int) k);
            }
            return fraction(Double.parseDouble(s));
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("keep: '" + s + "' is neither a fraction in (0, 1] nor an integer count");
        }
    }

    public boolean isFraction() {
        return count == 0;
    }

    /**
     * The number of groups to keep out of {@code groups}. A fraction rounds up (at least one group survives); a count
     * larger than {@code groups} is an error naming {@code what}.
     */
    public int of(int groups, String what) {
        if (isFraction()) {
            // the small slack keeps e.g. 0.3 * 10 at 3 rather than ceil(3.0000000000000004) = 4
            return (int) Math.max(1, Math.min(groups, Math.ceil(fraction * groups - 1e-9)));
        }
        if (count > groups) {
            throw new IllegalArgumentException("keep: count " + count + " exceeds the " + groups + " groups of " + what);
        }
        return count;
    }

    @Override
    public String toString() {
        return isFraction() ? Double.toString(fraction) : Integer.toString(count);
    }
}
