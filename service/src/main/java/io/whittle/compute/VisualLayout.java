package io.whittle.compute;

/**
 * Where the visual tokens of one multimodal sequence sit and which of them a visual query may see. Rows
 * [0, prefix) are the tokens before the image, rows [prefix, prefix + gridRows * gridCols) the image's visual
 * tokens on a row-major patch grid (token t at grid row t / gridCols, column t % gridCols), every later row is
 * text. A visual query sees the visual keys within {@code windowRadius} grid rows and columns of itself in both
 * directions (a (2r+1) x (2r+1) window on the grid, not on the sequence) plus every prefix key.
 */
public record VisualLayout(int prefix, int gridRows, int gridCols, int windowRadius) {

    public VisualLayout {
        if (prefix < 0 || gridRows < 1 || gridCols < 1 || windowRadius < 0) {
            throw new IllegalArgumentException("invalid visual layout: prefix=" + prefix + ", grid " + gridRows + "x" + gridCols
                    + ", window radius " + windowRadius);
        }
    }

    /** The layout of a {@code window} x {@code window} neighbourhood; the window must be odd and at least 1. */
    public static VisualLayout ofWindow(int prefix, int gridRows, int gridCols, int window) {
        return new VisualLayout(prefix, gridRows, gridCols, radiusOf(window));
    }

    /** The radius of an odd window size: (w - 1) / 2. Even sizes and sizes below 1 are errors. */
    public static int radiusOf(int window) {
        if (window < 1 || window % 2 == 0) {
            throw new IllegalArgumentException("window must be an odd number >= 1 (a w x w neighbourhood centred on the token), got "
                    + window);
        }
        return (window - 1) / 2;
    }

    /** Number of visual tokens. */
    public int visual() {
        return gridRows * gridCols;
    }

    /** First row after the visual tokens. */
    public int visualEnd() {
        return prefix + visual();
    }

    public boolean isVisualRow(int row) {
        return row >= prefix && row < visualEnd();
    }

    /** Whether visual token {@code query} (0-based within the image) sees visual token {@code key}. */
    public boolean windowAllows(int query, int key) {
        return Math.abs(query / gridCols - key / gridCols) <= windowRadius
                && Math.abs(query % gridCols - key % gridCols) <= windowRadius;
    }

    /** The visual tokens visual token {@code query} sees, ascending. */
    public int[] windowKeys(int query) {
        int r = query / gridCols, c = query % gridCols;
        int r0 = Math.max(0, r - windowRadius), r1 = Math.min(gridRows - 1, r + windowRadius);
        int c0 = Math.max(0, c - windowRadius), c1 = Math.min(gridCols - 1, c + windowRadius);
        int[] out = new int[(r1 - r0 + 1) * (c1 - c0 + 1)];
        int n = 0;
        for (int rr = r0; rr <= r1; rr++) {
            for (int cc = c0; cc <= c1; cc++) {
                out[n++] = rr * gridCols + cc;
            }
        }
        return out;
    }

    /** Allowed (visual query, visual key) pairs: the product of the per-axis counts. */
    public long allowedVisualPairs() {
        return axisPairs(gridRows) * axisPairs(gridCols);
    }

    private long axisPairs(int n) {
        long s = 0;
        for (int i = 0; i < n; i++) {
            s += Math.min(n - 1, i + windowRadius) - Math.max(0, i - windowRadius) + 1;
        }
        return s;
    }
}
