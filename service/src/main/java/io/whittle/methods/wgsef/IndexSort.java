package io.whittle.methods.wgsef;

/**
 * Stable merge sort of an index array by a double key, without boxing. Stability is what makes every top-k in this
 * package break ties by the lower group index (wgsef.md §6, "Determinism").
 */
final class IndexSort {

    private IndexSort() {
    }

    /**
     * Sorts {@code idx[0..n)} by {@code key[idx[i]]}, ascending or descending; equal keys keep their order in
     * {@code idx}. {@code tmp} must hold at least n ints.
     */
    static void sort(int[] idx, int n, double[] key, boolean descending, int[] tmp) {
        if (n < 2) {
            return;
        }
        if (n <= 16) {
            insertion(idx, n, key, descending);
            return;
        }
        int[] src = idx;
        int[] dst = tmp;
        for (int width = 1; width < n; width <<= 1) {
            for (int lo = 0; lo < n; lo += 2 * width) {
                int mid = Math.min(lo + width, n);
                int hi = Math.min(lo + 2 * width, n);
                int i = lo;
                int j = mid;
                int o = lo;
                while (i < mid && j < hi) {
                    // take from the right run only when strictly before: that is what keeps the sort stable
                    if (before(key[src[j]], key[src[i]], descending)) {
                        dst[o++] = src[j++];
                    } else {
                        dst[o++] = src[i++];
                    }
                }
                while (i < mid) {
                    dst[o++] = src[i++];
                }
                while (j < hi) {
                    dst[o++] = src[j++];
                }
            }
            int[] t = src;
            src = dst;
            dst = t;
        }
        if (src != idx) {
            System.arraycopy(src, 0, idx, 0, n);
        }
    }

    private static void insertion(int[] idx, int n, double[] key, boolean descending) {
        for (int i = 1; i < n; i++) {
            int v = idx[i];
            int j = i - 1;
            while (j >= 0 && before(key[v], key[idx[j]], descending)) {
                idx[j + 1] = idx[j];
                j--;
            }
            idx[j + 1] = v;
        }
    }

    private static boolean before(double a, double b, boolean descending) {
        return descending ? a > b : a < b;
    }
}
