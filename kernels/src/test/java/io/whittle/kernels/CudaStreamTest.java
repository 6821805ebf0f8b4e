package io.whittle.kernels;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The glue on a device: copies, launches and their errors, timings, GEMM in both precisions and the kernels the
 * Backend interface does not reach (norm statistics, conversions), each against a plain Java reference. Skipped
 * without a usable device; runs on a GPU and on the driver emulator (kernels/emu/run-conformance.sh).
 */
class CudaStreamTest {

    private CudaDevice device;
    private CudaStream stream;
    private final Random random = new Random(11);

    @BeforeEach
    void open() {
        CudaProbe.Result probe = CudaProbe.probe();
        Assumptions.assumeTrue(probe.usable(), () -> "no CUDA device: " + probe.reason());
        device = CudaDevice.open(0);
        stream = device.newStream("test", Long.MAX_VALUE);
    }

    @AfterEach
    void close() {
        if (stream != null) {
            stream.close(); // fails on leaked buffers
        }
    }

    private DeviceBuffer upload(float[] v, String label) {
        DeviceBuffer b = stream.allocator().allocate(4L * Math.max(1, v.length), label);
        stream.upload(b.address(), v);
        return b;
    }

    private float[] gaussian(int n) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = (float) random.nextGaussian();
        }
        return a;
    }

    @Test
    void propertiesAreSane() {
        DeviceProperties p = device.properties();
        assertThat(p.arch()).matches("sm_\\d+");
        assertThat(p.multiprocessors()).isPositive();
        assertThat(p.totalMemoryBytes()).isPositive();
        assertThat(p.warpSize()).isEqualTo(32);
        assertThat(p.nominalBandwidthBytesPerSecond()).isPositive();
        MemInfo m = device.memInfo();
        assertThat(m.freeBytes()).isPositive().isLessThanOrEqualTo(m.totalBytes());
        assertThat(device.loadAllModules()).containsOnlyKeys(KernelSources.MODULES);
    }

    @Test
    void copiesAndMemsetRoundTrip() {
        int[] ints = {1, -2, 3, Integer.MAX_VALUE};
        double[] doubles;
        try (DeviceBuffer b = stream.allocator().allocate(64, "ints")) {
            stream.upload(b.address(), ints);
            assertThat(stream.downloadInts(b.address(), 4)).containsExactly(ints);
            stream.memset32(b.address(4), 7, 2);
            assertThat(stream.downloadInts(b.address(), 4)).containsExactly(1, 7, 7, Integer.MAX_VALUE);
            stream.upload(b.address(), new long[] {Double.doubleToRawLongBits(0.5), Double.doubleToRawLongBits(-3.25)});
            doubles = stream.downloadDoubles(b.address(), 2);
        }
        assertThat(doubles).containsExactly(0.5, -3.25);
        float[] f = gaussian(1000);
        try (DeviceBuffer a = upload(f, "a"); DeviceBuffer c = stream.allocator().allocate(4000, "c")) {
            stream.copyDeviceToDevice(c.address(), a.address(), 4000);
            assertThat(stream.downloadFloats(c.address(), 1000)).containsExactly(f);
        }
    }

    @Test
    void invalidLaunchNamesKernelAndShape() {
        Kernel k = device.kernel("elementwise.cu", "add_f32");
        assertThatThrownBy(() -> stream.launch(k, Dim3.of(1), Dim3.of(2048), 0, KernelArgs.of().ptr(0).ptr(0).ptr(0).i64(0)))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("invalid launch cuLaunchKernel(elementwise.cu/add_f32, grid=(1,1,1), block=(2048,1,1), smem=0 B")
                .hasMessageContaining("args=[ptr 0x0, ptr 0x0, ptr 0x0, i64 0]");
        assertThatThrownBy(() -> device.kernel("elementwise.cu", "no_such_kernel")).isInstanceOf(CudaException.class)
                .hasMessageContaining("cuModuleGetFunction failed").hasMessageContaining("no_such_kernel");
    }

    @Test
    void leakedBufferFailsTheStreamClose() {
        CudaStream s = device.newStream("leaky", Long.MAX_VALUE);
        s.allocator().allocate(4096, "forgotten activations");
        assertThatThrownBy(s::close).isInstanceOf(IllegalStateException.class)
                .hasMessageContaining("Device memory was leaked by " + device.properties().id() + "/leaky: 4.00 KiB still allocated in 1 buffer(s) "
                        + "[forgotten activations (4.00 KiB)]");
    }

    @Test
    void timingsCountLaunchesPerKernel() {
        stream.timings().setEnabled(true);
        Kernel add = device.kernel("elementwise.cu", "add_f32");
        try (DeviceBuffer a = upload(gaussian(256), "a")) {
            for (int i = 0; i < 3; i++) {
                stream.launch(add, Dim3.of(1), Dim3.of(256), 0, KernelArgs.of().ptr(a).ptr(a).ptr(a).i64(256));
            }
        }
        List<KernelTimings.Stat> stats = stream.timings().collect();
        assertThat(stats).hasSize(1);
        assertThat(stats.get(0).kernel()).isEqualTo("elementwise.cu/add_f32");
        assertThat(stats.get(0).launches()).isEqualTo(3);
        assertThat(stats.get(0).totalMillis()).isGreaterThanOrEqualTo(stats.get(0).maxMillis()).isGreaterThanOrEqualTo(0);
    }

    private static float bf16(float f) {
        int x = Float.floatToRawIntBits(f);
        x += 0x7FFF + ((x >>> 16) & 1);
        return Float.intBitsToFloat(x & 0xFFFF0000);
    }

    @Test
    void gemmBothPrecisionsEveryTranspose() {
        Gemm gemm = stream.gemm();
        assertThat(gemm.implementation()).isNotBlank();
        int m = 70, n = 150, k = 45;
        for (Gemm.Precision p : Gemm.Precision.values()) {
            if (!gemm.supports(p)) {
                continue;
            }
            for (boolean ta : new boolean[] {false, true}) {
                for (boolean tb : new boolean[] {false, true}) {
                    float[] a = gaussian(m * k), b = gaussian(k * n), c0 = gaussian(m * n);
                    double[] ref = new double[m * n];
                    for (int i = 0; i < m; i++) {
                        for (int j = 0; j < n; j++) {
                            double s = 0;
                            for (int q = 0; q < k; q++) {
                                float av = ta ? a[q * m + i] : a[i * k + q];
                                float bv = tb ? b[j * k + q] : b[q * n + j];
                                if (p == Gemm.Precision.BF16) {
                                    av = bf16(av);
                                    bv = bf16(bv);
                                }
                                s += (double) av * bv;
                            }
                            ref[i * n + j] = 0.5 * s + 2 * c0[i * n + j];
                        }
                    }
                    float[] out;
                    try (DeviceBuffer da = upload(a, "a"); DeviceBuffer db = upload(b, "b"); DeviceBuffer dc = upload(c0, "c")) {
                        gemm.gemm(p, ta, tb, m, n, k, 0.5f, da.address(), ta ? m : k, db.address(), tb ? k : n, 2f, dc.address(), n);
                        out = stream.downloadFloats(dc.address(), m * n);
                    }
                    double num = 0, den = 0;
                    for (int i = 0; i < ref.length; i++) {
                        num += (out[i] - ref[i]) * (out[i] - ref[i]);
                        den += ref[i] * ref[i];
                    }
                    // against a reference with the same operand rounding, both precisions are fp32-accurate
                    assertThat(Math.sqrt(num / den)).as("%s ta=%s tb=%s", p, ta, tb).isLessThan(1e-5);
                }
            }
        }
    }

    @Test
    void normStatisticsAgainstJava() {
        int rows = 37, cols = 300;
        float[] x = gaussian(rows * cols);
        double[] rowRef = new double[rows];
        double[] colRef = new double[cols];
        for (int r = 0; r < rows; r++) {
            for (int c = 0; c < cols; c++) {
                double v = x[r * cols + c];
                rowRef[r] += v * v;
                colRef[c] += v * v;
            }
        }
        long[] offsets = {0, 5, 5, 1000, (long) rows * cols};
        double[] segRef = new double[4];
        for (int s = 0; s < 4; s++) {
            for (long i = offsets[s]; i < offsets[s + 1]; i++) {
                segRef[s] += (double) x[(int) i] * x[(int) i];
            }
        }
        try (DeviceBuffer dx = upload(x, "x"); DeviceBuffer out = stream.allocator().allocate(8L * cols, "out");
             DeviceBuffer off = stream.allocator().allocate(8L * offsets.length, "offsets")) {
            stream.launch(device.kernel("norms.cu", "row_sumsq_f32"), Dim3.of(5), Dim3.of(256), 0,
                    KernelArgs.of().ptr(dx).i64(rows).i32(cols).ptr(out));
            assertClose(stream.downloadDoubles(out.address(), rows), rowRef);
            stream.launch(device.kernel("norms.cu", "col_sumsq_f32"), Dim3.of((cols + 31) / 32), Dim3.of(32, 8), 0,
                    KernelArgs.of().ptr(dx).i64(rows).i32(cols).ptr(out));
            assertClose(stream.downloadDoubles(out.address(), cols), colRef);
            stream.upload(off.address(), offsets);
            stream.launch(device.kernel("norms.cu", "segment_sumsq_f32"), Dim3.of(3), Dim3.of(256), 0,
                    KernelArgs.of().ptr(dx).ptr(off).i32(4).ptr(out));
            assertClose(stream.downloadDoubles(out.address(), 4), segRef);
        }
    }

    private static void assertClose(double[] actual, double[] expected) {
        assertThat(actual).hasSameSizeAs(expected);
        for (int i = 0; i < expected.length; i++) {
            assertThat(actual[i]).as("element %d", i).isCloseTo(expected[i], org.assertj.core.data.Offset.offset(1e-9 * (1 + expected[i])));
        }
    }

    @Test
    void bf16AndF16ConversionsRoundTrip() {
        float[] x = gaussian(999);
        x[0] = Float.NaN;
        x[1] = 0f;
        x[2] = -1.5f;
        x[3] = 65504f;
        try (DeviceBuffer dx = upload(x, "x"); DeviceBuffer h = stream.allocator().allocate(2L * x.length, "half");
             DeviceBuffer back = stream.allocator().allocate(4L * x.length, "back")) {
            stream.launch(device.kernel("convert.cu", "f32_to_bf16"), Dim3.of(4), Dim3.of(256), 0,
                    KernelArgs.of().ptr(dx).ptr(h).i64(x.length));
            stream.launch(device.kernel("convert.cu", "bf16_to_f32"), Dim3.of(4), Dim3.of(256), 0,
                    KernelArgs.of().ptr(h).ptr(back).i64(x.length));
            float[] b = stream.downloadFloats(back.address(), x.length);
            assertThat(Float.floatToRawIntBits(b[0])).isEqualTo(0x7FC00000);
            for (int i = 1; i < x.length; i++) {
                assertThat(b[i]).as("bf16 %d", i).isEqualTo(bf16(x[i]));
            }
            stream.launch(device.kernel("convert.cu", "f32_to_f16"), Dim3.of(4), Dim3.of(256), 0,
                    KernelArgs.of().ptr(dx).ptr(h).i64(x.length));
            stream.launch(device.kernel("convert.cu", "f16_to_f32"), Dim3.of(4), Dim3.of(256), 0,
                    KernelArgs.of().ptr(h).ptr(back).i64(x.length));
            float[] f = stream.downloadFloats(back.address(), x.length);
            assertThat(f[0]).isNaN();
            assertThat(f[1]).isZero();
            assertThat(f[2]).isEqualTo(-1.5f);
            assertThat(f[3]).isEqualTo(65504f);
            for (int i = 4; i < x.length; i++) {
                // round to nearest with 11 significant bits: within half an ulp of f16 (2^-11 relative, or the subnormal step)
                assertThat(Math.abs(f[i] - x[i])).as("f16 %d", i).isLessThanOrEqualTo(Math.max(Math.abs(x[i]) * 0x1p-11f, 0x1p-25f));
            }
        }
    }
}
