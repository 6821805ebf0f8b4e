package io.whittle.methods.wgsef;

import io.whittle.methods.wgsef.GroupPartition.Matrix;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Random;
import org.bytedeco.javacpp.FloatPointer;

/**
 * Throughput of the WGSEF building blocks against ceilings measured in the same run (DESIGN.md, "Correctness and
 * speed"):
 * <ul>
 *   <li>the prox on 10^7 and 10^8 parameters (groups {@code columns} and {@code nm:2:4}), in GB/s of the weight
 *       tensor processed, against {@code System.arraycopy} of the same bytes;</li>
 *   <li>one FISTA iteration of the layer-wise solver on a 4096 x 11008 matrix (one SGEMM 4096 x 11008 x 11008, the
 *       prox and the momentum update), in GFLOP/s of its GEMM, against a bare OpenBLAS SGEMM of the same shape.</li>
 * </ul>
 * Not a unit test (the 10^8 case needs about 1 GB of heap and the FISTA case about 3 GB of memory and a minute of CPU).
 * Run it from the repository root after {@code mvn -pl service -am test-compile}:
 * <pre>
 *   mvn -q -pl service dependency:build-classpath -Dmdep.outputFile=/tmp/cp.txt
 *   java -Xmx8g -cp service/target/test-classes:service/target/classes:$(cat /tmp/cp.txt) \
 *        io.whittle.methods.wgsef.WgsefBench [--prox 1e7,1e8] [--fista 4096x11008] [--reps 3]
 * </pre>
 */
public final class WgsefBench {

    /** One measurement: what, its rate, the same-run ceiling and their ratio. */
    public record Measurement(String name, double seconds, double rate, double ceiling, String unit) {
        public double ratio() {
            return rate / ceiling;
        }

        @Override
        public String toString() {
            return String.format(Locale.ROOT, "%-46s %9.4f s  %9.2f %s  (ceiling %9.2f %s, %5.1f%%)", name, seconds, rate,
                    unit, ceiling, unit, 100 * ratio());
        }
    }

    private WgsefBench() {
    }

    public static void main(String[] args) {
        for (Measurement m : run(args)) {
            System.out.println(m);
        }
    }

    /** Runs the configured benchmarks and returns their measurements. */
    public static List<Measurement> run(String[] args) {
        List<Long> proxSizes = List.of(10_000_000L, 100_000_000L);
        int[] fista = {4096, 11008};
        int reps = 3;
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--prox" -> {
                    List<Long> sizes = new ArrayList<>();
                    for (String s : args[++i].split(",")) {
                        if (!s.isBlank()) {
                            sizes.add((long) Double.parseDouble(s));
                        }
                    }
                    proxSizes = sizes;
                }
                case "--fista" -> {
                    String s = args[++i];
                    if (s.equals("none")) {
                        fista = null;
                    } else {
                        String[] p = s.split("x");
                        fista = new int[] {Integer.parseInt(p[0]), Integer.parseInt(p[1])};
                    }
                }
                case "--reps" -> reps = Integer.parseInt(args[++i]);
                default -> throw new IllegalArgumentException("unknown argument " + args[i]
                        + "; usage: [--prox 1e7,1e8] [--fista 4096x11008|none] [--reps 3]");
            }
        }
        List<Measurement> out = new ArrayList<>();
        for (long n : proxSizes) {
            out.addAll(prox(n, reps));
        }
        if (fista != null) {
            out.add(fistaIteration(fista[0], fista[1], reps));
        }
        return out;
    }

    private static List<Measurement> prox(long parameters, int reps) {
        int cols = 4096;
        while (cols > 4 && parameters / cols < 4) {
            cols /= 4;
        }
        int rows = (int) Math.max(1, parameters / cols);
        float[] w = new float[Math.multiplyExact(rows, cols)];
        Random rnd = new Random(1);
        for (int i = 0; i < w.length; i++) {
            w[i] = (float) rnd.nextGaussian();
        }
        float[] work = new float[w.length];
        double bytes = 4.0 * w.length;
        double copy = best(reps, () -> System.arraycopy(w, 0, work, 0, w.length));
        double copyRate = bytes / copy / 1e9;
        List<Measurement> out = new ArrayList<>();
        String size = String.format(Locale.ROOT, "%.0e params (%d x %d)", (double) w.length, rows, cols);
        for (String spec : new String[] {"columns", "nm:2:4"}) {
            GroupPartition p = GroupPartition.of(GroupSpec.parse(spec), new Matrix("w", rows, cols), 0);
            int k = spec.equals("columns") ? p.level(Keep.fraction(0.5)) : p.level(null);
            // the prox works in place: refill the input before each timed run, outside the timing
            double t = best(reps, () -> System.arraycopy(w, 0, work, 0, w.length),
                    () -> Wgsef.prox(p, 1, k, 0.5, RootFinder.RANDOM_PIVOT, 7, List.of(work)));
            out.add(new Measurement("prox " + spec + ", " + size, t, bytes / t / 1e9, copyRate, "GB/s"));
        }
        return out;
    }

    private static Measurement fistaIteration(int rows, int cols, int reps) {
        Random rnd = new Random(2);
        float[] w = new float[Math.multiplyExact(rows, cols)];
        for (int i = 0; i < w.length; i++) {
            w[i] = (float) rnd.nextGaussian();
        }
        // a Kac-Murdock-Szego matrix rho^|i-j|: symmetric positive definite and cheap to build at this size
        float[] h = new float[Math.multiplyExact(cols, cols)];
        float[] byDistance = new float[cols];
        for (int d = 0; d < cols; d++) {
            byDistance[d] = (float) Math.pow(0.9, d);
        }
        for (int i = 0; i < cols; i++) {
            for (int j = 0; j < cols; j++) {
                h[i * cols + j] = byDistance[Math.abs(i - j)];
            }
        }
        double flops = 2.0 * rows * cols * (double) cols;
        GroupPartition p = GroupPartition.of(GroupSpec.parse("columns"), new Matrix("w", rows, cols), 0);
        int k = p.level(Keep.fraction(0.5));
        try (Gram gram = Gram.ofMatrix(h, cols)) {
            h = null;
            double gemm;
            try (FloatPointer a = new FloatPointer(w); FloatPointer c = new FloatPointer((long) rows * cols)) {
                gemm = best(reps, () -> Blas.gemm(a, gram.sum(), c, rows, cols, cols, 1f, 0f));
            }
            try (MemberObjective obj = new MemberObjective(p.members().get(0), w, gram, 0.01, 20, 3)) {
                Fista f = new Fista(p, List.of(obj), 1, k, RootFinder.RANDOM_PIVOT, 5, obj.weight * obj.lipschitz * 1.02);
                double step = best(reps, () -> f.step(0.05));
                return new Measurement("FISTA iteration, columns, " + rows + " x " + cols, step, flops / step / 1e9,
                        flops / gemm / 1e9, "GFLOP/s");
            }
        }
    }

    /** Best of {@code reps} timed runs after one warm-up. */
    private static double best(int reps, Runnable r) {
        return best(reps, () -> { }, r);
    }

    /**
     * Best of {@code reps} timed runs of {@code r}, each preceded by an untimed {@code setup}, after as many warm-up
     * runs (at least one) so that the JIT has compiled the loops.
     */
    private static double best(int reps, Runnable setup, Runnable r) {
        for (int i = 0; i < Math.max(1, reps); i++) {
            setup.run();
            r.run();
        }
        double best = Double.POSITIVE_INFINITY;
        for (int i = 0; i < Math.max(1, reps); i++) {
            setup.run();
            long t0 = System.nanoTime();
            r.run();
            best = Math.min(best, Math.max(1e-9, (System.nanoTime() - t0) / 1e9));
        }
        return best;
    }
}
