package io.whittle.kernels;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.Deque;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import jcuda.driver.CUevent;
import jcuda.driver.CUevent_flags;
import jcuda.driver.CUstream;
import jcuda.driver.JCudaDriver;

/**
 * Per-kernel GPU time from CUDA events recorded around each launch on one stream (when enabled): what
 * {@code whittle.kernel.duration} publishes. Events are pooled; {@link #collect()} waits for the pending ones and
 * folds them into per-kernel totals.
 */
public final class KernelTimings {

    /** Launch count, total and longest GPU time of one kernel. */
    public record Stat(String kernel, long launches, double totalMillis, double maxMillis) {
    }

    private record Pending(String kernel, CUevent start, CUevent stop) {
    }

    private final CUstream stream;
    private final Deque<CUevent> pool = new ArrayDeque<>();
    private final List<Pending> pending = new ArrayList<>();
    private final Map<String, double[]> totals = new LinkedHashMap<>();
    private volatile boolean enabled;

    KernelTimings(CUstream stream) {
        this.stream = stream;
    }

    public boolean isEnabled() {
        return enabled;
    }

    public void setEnabled(boolean enabled) {
        this.enabled = enabled;
    }

    synchronized CUevent[] begin() {
        CUevent start = event();
        Driver.check(JCudaDriver.cuEventRecord(start, stream), "cuEventRecord");
        return new CUevent[] {start, null};
    }

    synchronized void end(String kernel, CUevent[] token) {
        CUevent stop = event();
        Driver.check(JCudaDriver.cuEventRecord(stop, stream), "cuEventRecord");
        pending.add(new Pending(kernel, token[0], stop));
        if (pending.size() >= 4096) {
            fold(); // keeps the event count bounded in long runs
        }
    }

    private CUevent event() {
        CUevent e = pool.poll();
        if (e == null) {
            e = new CUevent();
            Driver.check(JCudaDriver.cuEventCreate(e, CUevent_flags.CU_EVENT_DEFAULT), "cuEventCreate");
        }
        return e;
    }

    private void fold() {
        if (pending.isEmpty()) {
            return;
        }
        Driver.check(JCudaDriver.cuEventSynchronize(pending.get(pending.size() - 1).stop()), "cuEventSynchronize");
        float[] ms = {0};
        for (Pending p : pending) {
            Driver.check(JCudaDriver.cuEventElapsedTime(ms, p.start(), p.stop()), "cuEventElapsedTime");
            double[] t = totals.computeIfAbsent(p.kernel(), k -> new double[3]);
            t[0]++;
            t[1] += ms[0];
            t[2] = Math.max(t[2], ms[0]);
            pool.push(p.start());
            pool.push(p.stop());
        }
        pending.clear();
    }

    /** Per-kernel totals so far, longest total first (waits for the GPU to finish the timed launches). */
    public synchronized List<Stat> collect() {
        fold();
        List<Stat> out = new ArrayList<>();
        totals.forEach((k, t) -> out.add(new Stat(k, (long) t[0], t[1], t[2])));
        out.sort(Comparator.comparingDouble(Stat::totalMillis).reversed());
        return out;
    }

    public synchronized void reset() {
        fold();
        totals.clear();
    }

    synchronized void close() {
        try {
            fold();
        } finally {
            for (CUevent e : pool) {
                JCudaDriver.cuEventDestroy(e);
            }
            pool.clear();
        }
    }
}
