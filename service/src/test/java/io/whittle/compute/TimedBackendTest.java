package io.whittle.compute;

import static org.assertj.core.api.Assertions.assertThat;

import io.whittle.compute.cpu.CpuBackend;
import io.whittle.tensor.FloatTensor;
import io.whittle.tensor.Shape;
import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * The timing wrapper must forward (and time) every backend operation, including ones with default bodies, and
 * report the work each did: FLOPs of matrix products and bytes of fp32 operands, counted here independently from
 * the shapes.
 */
class TimedBackendTest {

    record Call(String kernel, String device, long nanos, long flops, long bytes) {
    }

    /** Records what the wrapper reports. */
    static final class Recorder implements KernelTimings.Listener {
        final List<Call> calls = new ArrayList<>();

        @Override
        public void kernelFinished(String kernel, String device, long nanos) {
            throw new AssertionError("the wrapper must report the work too");
        }

        @Override
        public void kernelFinished(String kernel, String device, long nanos, long flops, long bytes) {
            calls.add(new Call(kernel, device, nanos, flops, bytes));
        }

        Call last() {
            return calls.get(calls.size() - 1);
        }
    }

    @Test
    void overridesEveryBackendOperation() throws Exception {
        for (Method m : Backend.class.getMethods()) {
            if (Modifier.isStatic(m.getModifiers())) {
                continue;
            }
            Method impl = TimedBackend.class.getMethod(m.getName(), m.getParameterTypes());
            assertThat(impl.getDeclaringClass()).as("TimedBackend must override %s%s", m.getName(),
                    Arrays.toString(m.getParameterTypes())).isEqualTo(TimedBackend.class);
        }
    }

    static FloatTensor random(Random r, int rows, int cols) {
        float[] v = new float[rows * cols];
        for (int i = 0; i < v.length; i++) {
            v[i] = (float) r.nextGaussian();
        }
        return FloatTensor.of(Shape.of(rows, cols), v);
    }

    @Test
    void matrixProductsReportTheirFlopsAndOperandBytes() {
        Random r = new Random(17);
        Recorder rec = new Recorder();
        int t = 7, in = 24, out = 40;
        try (CpuBackend cpu = new CpuBackend();
             TimedBackend b = new TimedBackend(cpu, rec);
             FloatTensor x = random(r, t, in);
             FloatTensor w = random(r, out, in);
             FloatTensor bias = random(r, 1, out);
             FloatTensor y = random(r, t, out);
             FloatTensor a = random(r, in, t);          // used transposed: op(a) is [t, in]
             FloatTensor c = random(r, t, out)) {
            b.linear(x, w, bias, y);
            Call linear = rec.last();
            assertThat(linear.kernel()).isEqualTo("linear");
            assertThat(linear.device()).isEqualTo(cpu.name());
            assertThat(linear.nanos()).isPositive();
            assertThat(linear.flops()).isEqualTo(2L * 7 * 24 * 40);
            assertThat(linear.bytes()).isEqualTo(4L * (7 * 24 + 40 * 24 + 40 + 7 * 40));

            // c = a^T w^T + 0.5 c: m = 7, k = 24, n = 40; c is read because beta is not 0
            b.matmul(a, true, w, true, 1f, 0.5f, c);
            Call matmul = rec.last();
            assertThat(matmul.kernel()).isEqualTo("matmul");
            assertThat(matmul.flops()).isEqualTo(2L * 7 * 40 * 24);
            assertThat(matmul.bytes()).isEqualTo(4L * (24 * 7 + 40 * 24 + 2 * 7 * 40));

            b.add(y, c, y);
            Call add = rec.last();
            assertThat(add.flops()).isZero();
            assertThat(add.bytes()).isEqualTo(4L * 3 * 7 * 40);
        }
    }

    @Test
    void attentionCountsTheQueryKeyPairsItComputes() {
        Random r = new Random(5);
        Recorder rec = new Recorder();
        AttentionShape shape = new AttentionShape(4, 2, 8);
        int[] starts = {0, 5};
        int[] lengths = {5, 3};
        int rows = 8;
        try (CpuBackend cpu = new CpuBackend();
             TimedBackend b = new TimedBackend(cpu, rec);
             FloatTensor q = random(r, rows, 4 * 8);
             FloatTensor k = random(r, rows, 2 * 8);
             FloatTensor v = random(r, rows, 2 * 8);
             FloatTensor out = random(r, rows, 4 * 8)) {
            b.attention(q, k, v, out, shape, starts, lengths, null);
            // causal: 5*6/2 + 3*4/2 = 21 pairs; q.k and p.v over 8 dimensions in each of 4 query heads
            Call causal = rec.last();
            assertThat(causal.kernel()).isEqualTo("attention");
            assertThat(causal.flops()).isEqualTo(21L * 4 * 8 * 2 * 2);
            assertThat(causal.bytes()).isEqualTo(4L * (2 * rows * 32 + 2 * rows * 16));

            b.bidirectionalAttention(q, k, v, out, shape, starts, lengths);
            // every query sees every key of its sequence: 25 + 9 pairs
            assertThat(rec.last().flops()).isEqualTo(34L * 4 * 8 * 2 * 2);
        }
    }
}
