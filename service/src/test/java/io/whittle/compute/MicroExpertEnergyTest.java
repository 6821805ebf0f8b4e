package io.whittle.compute;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.whittle.compute.cpu.CpuBackend;
import io.whittle.tensor.FloatTensor;
import io.whittle.tensor.Shape;
import java.lang.reflect.InvocationHandler;
import java.lang.reflect.Method;
import java.lang.reflect.Proxy;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * {@link Backend#microExpertEnergy}: the CPU implementation and the interface default against an fp64 reference,
 * across several token chunks; routed-only scoring equal to all-token scoring with A = 0 off the route; shape
 * errors named.
 */
class MicroExpertEnergyTest {

    private static FloatTensor gaussian(Random r, int rows, int cols, double std) {
        FloatTensor t = FloatTensor.zeros(Shape.of(rows, cols));
        for (long i = 0; i < t.numel(); i++) {
            t.set(i, (float) (std * r.nextGaussian()));
        }
        return t;
    }

    /** phi in fp64 from the fp32 inputs, sums and maxima of phi^2. */
    private static double[][] reference(FloatTensor x, FloatTensor gate, FloatTensor up, float[] a) {
        int n = x.rows(), d = x.cols(), f = gate.rows();
        double[] sum = new double[f];
        double[] max = new double[f];
        for (int t = 0; t < n; t++) {
            for (int j = 0; j < f; j++) {
                double g = 0, u = 0;
                for (int i = 0; i < d; i++) {
                    g += (double) gate.get((long) j * d + i) * x.get((long) t * d + i);
                    u += (double) up.get((long) j * d + i) * x.get((long) t * d + i);
                }
                double phi = a[t] * g / (1 + Math.exp(-g)) * u;
                sum[j] += phi * phi;
                max[j] = Math.max(max[j], phi * phi);
            }
        }
        return new double[][] {sum, max};
    }

    private static double relErr(double[] a, double[] ref) {
        double num = 0, den = 0;
        for (int i = 0; i < a.length; i++) {
            num += (a[i] - ref[i]) * (a[i] - ref[i]);
            den += ref[i] * ref[i];
        }
        return Math.sqrt(num / den);
    }

    /** A backend whose microExpertEnergy is the interface default, everything else the CPU backend. */
    private static Backend defaultOnly(CpuBackend cpu) {
        InvocationHandler h = (proxy, method, args) -> {
            if (method.getName().equals("microExpertEnergy")) {
                return InvocationHandler.invokeDefault(proxy, method, args);
            }
            return method.invoke(cpu, args);
        };
        return (Backend) Proxy.newProxyInstance(Backend.class.getClassLoader(), new Class<?>[] {Backend.class}, h);
    }

    @Test
    void matchesAnFp64ReferenceOverSeveralChunks() {
        Random r = new Random(3);
        int n = 1500, d = 24, f = 4096; // chunkRows(1500, 4096) = 1024: two chunks, the second partial
        assertEquals(1024, MicroExpertEnergy.chunkRows(n, f));
        try (CpuBackend cpu = new CpuBackend();
             FloatTensor x = gaussian(r, n, d, 1.0);
             FloatTensor gate = gaussian(r, f, d, 0.3);
             FloatTensor up = gaussian(r, f, d, 0.3)) {
            float[] a = new float[n];
            for (int t = 0; t < n; t++) {
                a[t] = t % 3 == 0 ? 0f : r.nextFloat();
            }
            double[][] ref = reference(x, gate, up, a);
            for (Backend b : new Backend[] {cpu, defaultOnly(cpu)}) {
                double[] sum = new double[f];
                double[] max = new double[f];
                b.microExpertEnergy(x, gate, up, a, sum, max);
                assertTrue(relErr(sum, ref[0]) < 1e-5, "sum rel err " + relErr(sum, ref[0]));
                assertTrue(relErr(max, ref[1]) < 1e-5, "max rel err " + relErr(max, ref[1]));
            }
        }
    }

    @Test
    void accumulatesAcrossCallsAndRoutedOnlyEqualsAllTokens() {
        Random r = new Random(8);
        int n = 200, d = 16, f = 40;
        try (CpuBackend cpu = new CpuBackend();
             FloatTensor x = gaussian(r, n, d, 1.0);
             FloatTensor gate = gaussian(r, f, d, 0.4);
             FloatTensor up = gaussian(r, f, d, 0.4)) {
            // all tokens, A = 0 off the route (the reference implementation's dense [T, E] routing matrix)
            float[] dense = new float[n];
            int routed = 0;
            for (int t = 0; t < n; t++) {
                if (r.nextInt(4) == 0) {
                    dense[t] = 0.05f + r.nextFloat();
                    routed++;
                }
            }
            double[] sumAll = new double[f];
            double[] maxAll = new double[f];
            cpu.microExpertEnergy(x, gate, up, dense, sumAll, maxAll);
            // routed tokens only, gathered, in two calls (two forward groups)
            int[] rows = new int[routed];
            float[] a = new float[routed];
            for (int t = 0, k = 0; t < n; t++) {
                if (dense[t] != 0) {
                    rows[k] = t;
                    a[k++] = dense[t];
                }
            }
            double[] sum = new double[f];
            double[] max = new double[f];
            int half = routed / 2;
            try (FloatTensor xr = FloatTensor.zeros(Shape.of(routed, d))) {
                cpu.gatherRows(x, rows, xr);
                cpu.microExpertEnergy(xr.rowSlice(0, half), gate, up, java.util.Arrays.copyOfRange(a, 0, half), sum, max);
                cpu.microExpertEnergy(xr.rowSlice(half, routed - half), gate, up, java.util.Arrays.copyOfRange(a, half, routed),
                        sum, max);
            }
            // same fp32 products row by row, same fp64 order: equal up to BLAS blocking of different row counts
            assertTrue(relErr(sum, sumAll) < 1e-6, "sum rel err " + relErr(sum, sumAll));
            assertArrayEquals(maxAll, max, 1e-6 * java.util.Arrays.stream(maxAll).max().orElse(1));
        }
    }

    @Test
    void namesMismatchedShapes() {
        try (CpuBackend cpu = new CpuBackend();
             FloatTensor x = FloatTensor.zeros(Shape.of(4, 8));
             FloatTensor gate = FloatTensor.zeros(Shape.of(6, 8));
             FloatTensor up = FloatTensor.zeros(Shape.of(6, 7))) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> cpu.microExpertEnergy(x, gate, up, new float[4], new double[6], new double[6]));
            assertEquals("microExpertEnergy shape mismatch: x [4, 8], gate [6, 8], up [6, 7]", e.getMessage());
            e = assertThrows(IllegalArgumentException.class,
                    () -> cpu.microExpertEnergy(x, gate, gate, new float[3], new double[6], new double[6]));
            assertEquals("microExpertEnergy: 3 routing weights for 4 rows", e.getMessage());
        }
    }
}
