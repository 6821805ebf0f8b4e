package io.whittle.methods.wgsef;

/**
 * Scratch arrays for one WGSEF problem, reused across the many small problems of an N:M partition and across
 * FISTA iterations so the operator does not allocate per call. Not thread-safe: one per thread.
 */
final class ProxWorkspace {

    double[] alpha = new double[0];
    double[] beta = new double[0];
    double[] lo = new double[0];
    double[] hi = new double[0];
    double[] values = new double[0];
    int[] index = new int[0];
    int[] active = new int[0];
    int[] sortTmp = new int[0];
    int[] groupMap = new int[0];
    private long rngState;

    ProxWorkspace ensure(int n) {
        if (alpha.length < n) {
            int c = Math.max(n, 2 * alpha.length);
            alpha = new double[c];
            beta = new double[c];
            lo = new double[c];
            hi = new double[c];
            values = new double[2 * c];
            index = new int[2 * c];
            active = new int[c];
            sortTmp = new int[2 * c];
            groupMap = new int[c];
        }
        return this;
    }

    /** Restarts the pivot generator: the same seed gives the same pivots, hence byte-identical results. */
    void seed(long seed) {
        rngState = seed;
    }

    /** A uniform int in [0, bound), from SplitMix64. */
    int nextInt(int bound) {
        rngState += 0x9E3779B97F4A7C15L;
        long z = rngState;
        z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
        z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
        z = z ^ (z >>> 31);
        return (int) Math.floorMod(z, (long) bound);
    }

    /** SplitMix64 finaliser, used to derive one seed per problem from the job seed. */
    static long mix(long seed, long salt) {
        long z = seed + 0x9E3779B97F4A7C15L * (salt + 1);
        z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
        z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
        return z ^ (z >>> 31);
    }
}
