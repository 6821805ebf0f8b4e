package io.whittle.methods.wgsef;

import java.util.Locale;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The {@code groups} parameter: how a weight matrix is cut into the groups that WGSEF keeps or removes
 * (wgsef.md §3.2 and §7). One of
 * <ul>
 *   <li>{@code columns}: input channel j of W (out x in) is the group W[:, j];</li>
 *   <li>{@code rows}: output channel i is the group W[i, :];</li>
 *   <li>{@code heads}: head-sized blocks, the head_dim rows of one head in q/k/v_proj or its head_dim columns in
 *       o_proj;</li>
 *   <li>{@code blocks:RxC}: R x C tiles;</li>
 *   <li>{@code nm:N:M}: semi-structured N:M sparsity, singleton groups with one independent SEF (level N) per block
 *       of M consecutive inputs of a row;</li>
 *   <li>{@code mlp-channels}: intermediate channel j of a SwiGLU MLP, one group spanning gate row j, up row j and
 *       down column j (the unit that can be removed physically).</li>
 * </ul>
 * Parsing checks only the syntax; whether the spec fits a given matrix is checked by {@link GroupPartition}.
 */
public record GroupSpec(Kind kind, int blockRows, int blockCols, int n, int m) {

    /** The group families. */
    public enum Kind { COLUMNS, ROWS, HEADS, BLOCKS, NM, MLP_CHANNELS }

    static final String EXPECTED = "expected one of columns, rows, heads, blocks:RxC, nm:N:M, mlp-channels";

    private static final Pattern BLOCKS = Pattern.compile("blocks:(\\d+)x(\\d+)");
    private static final Pattern NM = Pattern.compile("nm:(\\d+):(\\d+)");

    public GroupSpec {
        if (kind == null) {
            throw new IllegalArgumentException("groups: kind is required");
        }
        if (kind == Kind.BLOCKS && (blockRows < 1 || blockCols < 1)) {
            throw new IllegalArgumentException("groups=blocks:" + blockRows + "x" + blockCols + ": block sides must be >= 1");
        }
        if (kind == Kind.NM && (n < 1 || m < 1 || n > m)) {
            throw new IllegalArgumentException("groups=nm:" + n + ":" + m + ": need 1 <= N <= M");
        }
    }

    public static GroupSpec of(Kind kind) {
        if (kind == Kind.BLOCKS || kind == Kind.NM) {
            throw new IllegalArgumentException("groups: " + kind + " needs sizes; use blocks(R, C) or nm(N, M)");
        }
        return new GroupSpec(kind, 0, 0, 0, 0);
    }

    public static GroupSpec blocks(int rows, int cols) {
        return new GroupSpec(Kind.BLOCKS, rows, cols, 0, 0);
    }

    public static GroupSpec nm(int n, int m) {
        return new GroupSpec(Kind.NM, 0, 0, n, m);
    }

    /** Parses the {@code groups} parameter; throws IllegalArgumentException naming the parameter on bad input. */
    public static GroupSpec parse(String spec) {
        if (spec == null || spec.isBlank()) {
            throw new IllegalArgumentException("groups: missing value; " + EXPECTED);
        }
        String s = spec.trim().toLowerCase(Locale.ROOT);
        switch (s) {
            case "columns":
                return of(Kind.COLUMNS);
            case "rows":
                return of(Kind.ROWS);
            case "heads":
                return of(Kind.HEADS);
            case "mlp-channels":
                return of(Kind.MLP_CHANNELS);
            default:
                break;
        }
        Matcher b = BLOCKS.matcher(s);
        if (b.matches()) {
            return blocks(parseSize(spec, b.group(1)), parseSize(spec, b.group(2)));
        }
        Matcher nm = NM.matcher(s);
        if (nm.matches()) {
            return nm(parseSize(spec, nm.group(1)), parseSize(spec, nm.group(2)));
        }
        throw new IllegalArgumentException("groups: unknown group spec '" + spec + "'; " + EXPECTED);
    }

    private static int parseSize(String spec, String digits) {
        try {
            return Integer.parseInt(digits);
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("groups: size '" + digits + "' in '" + spec + "' is not a valid integer");
        }
    }

    /** The canonical text of this spec, as {@link #parse} accepts it. */
    @Override
    public String toString() {
        return switch (kind) {
            case COLUMNS -> "columns";
            case ROWS -> "rows";
            case HEADS -> "heads";
            case BLOCKS -> "blocks:" + blockRows + "x" + blockCols;
            case NM -> "nm:" + n + ":" + m;
            case MLP_CHANNELS -> "mlp-channels";
        };
    }
}
