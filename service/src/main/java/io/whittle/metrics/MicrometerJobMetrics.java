package io.whittle.metrics;

import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.DistributionSummary;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Timer;
import io.whittle.compute.BackendProvider;
import io.whittle.compute.Backends;
import io.whittle.compute.DeviceInfo;
import io.whittle.compute.KernelTimings;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.function.Supplier;

/**
 * The service's meters in Micrometer (published at {@code /actuator/prometheus}). The names and tags are a contract
 * for the dashboards:
 * <ul>
 *   <li>{@code whittle.jobs.submitted} counter (method), {@code whittle.jobs.completed} counter (method, outcome),
 *       {@code whittle.bytes.processed} counter (method);</li>
 *   <li>{@code whittle.job.duration} timer with histogram (method, backend), {@code whittle.job.stage.duration}
 *       timer with histogram (method, stage), {@code whittle.job.device.memory.peak} distribution summary in bytes
 *       (method);</li>
 *   <li>{@code whittle.jobs.active} gauge (state: queued, running);</li>
 *   <li>{@code whittle.kernel.duration} timer with histogram (kernel, device), fed by the backends through
 *       {@link KernelTimings}, with the work of those kernels: {@code whittle.kernel.flops} counter (kernel, device;
 *       kernels with matrix products only) and {@code whittle.kernel.bytes} counter (kernel, device);</li>
 *   <li>{@code whittle.device.memory.used} and {@code whittle.device.memory.total} gauges in bytes (device);</li>
 *   <li>{@code whittle.benchmark.throughput} and {@code whittle.benchmark.efficiency} gauges (op, shape, device),
 *       the latest benchmark measurement of each.</li>
 * </ul>
 */
public final class MicrometerJobMetrics implements JobMetrics, AutoCloseable {

    private final MeterRegistry registry;
    private final Map<String, KernelMeters> kernels = new ConcurrentHashMap<>();
    private final Map<List<String>, BenchmarkValues> benchmarks = new ConcurrentHashMap<>();
    private volatile boolean kernelsInstalled;

    public MicrometerJobMetrics(MeterRegistry registry) {
        this.registry = registry;
    }

    @Override
    public void jobSubmitted(String method) {
        Counter.builder("whittle.jobs.submitted").description("Jobs accepted").tag("method", method)
                .register(registry).increment();
    }

    @Override
    public void jobCompleted(String method, String outcome) {
        Counter.builder("whittle.jobs.completed").description("Jobs that reached a final state")
                .tag("method", method).tag("outcome", outcome).register(registry).increment();
    }

    @Override
    public void jobDuration(String method, String backend, Duration duration) {
        Timer.builder("whittle.job.duration").description("Wall time of successful job runs")
                .tag("method", method).tag("backend", backend).publishPercentileHistogram()
                .register(registry).record(duration);
    }

    @Override
    public void stageDuration(String method, String stage, Duration duration) {
        Timer.builder("whittle.job.stage.duration").description("Time per stage of successful job runs")
                .tag("method", method).tag("stage", stage).publishPercentileHistogram().register(registry).record(duration);
    }

    @Override
    public void jobDevicePeakMemory(String method, long bytes) {
        DistributionSummary.builder("whittle.job.device.memory.peak").description("Peak device memory of a job run")
                .baseUnit("bytes").tag("method", method).register(registry).record(bytes);
    }

    @Override
    public void bytesProcessed(String method, long bytes) {
        // no base unit: Prometheus would name it whittle_bytes_processed_bytes_total
        Counter.builder("whittle.bytes.processed").description("Bytes of model weights read by job runs")
                .tag("method", method).register(registry).increment(bytes);
    }

    @Override
    public void benchmarkResult(String op, String shape, String device, double throughput, double efficiency) {
        BenchmarkValues values = benchmarks.computeIfAbsent(List.of(op, shape, device), k -> {
            BenchmarkValues v = new BenchmarkValues();
            Gauge.builder("whittle.benchmark.throughput", v, x -> x.throughput)
                    .description("Latest benchmark throughput, in the operation's unit per second")
                    .tag("op", op).tag("shape", shape).tag("device", device).strongReference(true).register(registry);
            Gauge.builder("whittle.benchmark.efficiency", v, x -> x.efficiency)
                    .description("Latest benchmark throughput as a fraction of the device ceiling measured in the same run")
                    .tag("op", op).tag("shape", shape).tag("device", device).strongReference(true).register(registry);
            return v;
        });
        values.throughput = throughput;
        values.efficiency = efficiency;
    }

    /**
     * Registers {@code whittle.jobs.active} for the queued and running states; {@code counts} is called at most
     * once a second (a scrape reads both states from one query).
     */
    public void bindActiveJobs(Supplier<Map<String, Long>> counts) {
        CachedCounts cache = new CachedCounts(counts);
        for (String state : List.of("queued", "running")) {
            Gauge.builder("whittle.jobs.active", cache, c -> c.get(state)).description("Jobs waiting or running")
                    .tag("state", state).strongReference(true).register(registry);
        }
    }

    /** Registers the device memory gauges for every device the backends see. */
    public void bindDevices() {
        for (BackendProvider p : Backends.providers()) {
            DeviceInfo d = p.probe();
            Gauge.builder("whittle.device.memory.total", d, DeviceInfo::memoryBytes).description("Device memory")
                    .baseUnit("bytes").tag("device", d.id()).strongReference(true).register(registry);
            Gauge.builder("whittle.device.memory.used", p, x -> {
                long used = x.memoryUsedBytes();
                return used < 0 ? Double.NaN : used;
            }).description("Device memory in use (on the CPU: tensor memory Whittle holds)")
                    .baseUnit("bytes").tag("device", d.id()).strongReference(true).register(registry);
        }
    }

    /** Makes every backend created from now on report its kernel times to {@code whittle.kernel.duration}. */
    public void installKernelTimings() {
        KernelTimings.install(new KernelTimings.Listener() {
            @Override
            public void kernelFinished(String kernel, String device, long nanos) {
                MicrometerJobMetrics.this.kernelFinished(kernel, device, nanos, 0, 0);
            }

            @Override
            public void kernelFinished(String kernel, String device, long nanos, long flops, long bytes) {
                MicrometerJobMetrics.this.kernelFinished(kernel, device, nanos, flops, bytes);
            }
        });
        kernelsInstalled = true;
    }

    private void kernelFinished(String kernel, String device, long nanos, long flops, long bytes) {
        KernelMeters m = kernels.computeIfAbsent(kernel + '\0' + device, k -> new KernelMeters(registry, kernel, device));
        m.duration.record(nanos, TimeUnit.NANOSECONDS);
        if (flops > 0) {
            m.flops(registry).increment(flops);
        }
        if (bytes > 0) {
            m.bytes.increment(bytes);
        }
    }

    @Override
    public void close() {
        if (kernelsInstalled) {
            KernelTimings.install(KernelTimings.NONE);
            kernelsInstalled = false;
        }
    }

    /** The meters of one kernel on one device; the FLOP counter only once the kernel reports FLOPs. */
    private static final class KernelMeters {
        final Timer duration;
        final Counter bytes;
        private final String kernel;
        private final String device;
        private volatile Counter flops;

        KernelMeters(MeterRegistry registry, String kernel, String device) {
            this.kernel = kernel;
            this.device = device;
            duration = Timer.builder("whittle.kernel.duration").description("Time of compute operations on a device")
                    .tag("kernel", kernel).tag("device", device).publishPercentileHistogram().register(registry);
            // no base unit: Prometheus would name it whittle_kernel_bytes_bytes_total
            bytes = Counter.builder("whittle.kernel.bytes")
                    .description("Bytes of fp32 operands compute operations read and wrote (each once)")
                    .tag("kernel", kernel).tag("device", device).register(registry);
        }

        Counter flops(MeterRegistry registry) {
            Counter c = flops;
            if (c == null) {
                // registering twice returns the same counter, so a race here is harmless
                c = Counter.builder("whittle.kernel.flops")
                        .description("Floating-point operations of the matrix products of compute operations")
                        .tag("kernel", kernel).tag("device", device).register(registry);
                flops = c;
            }
            return c;
        }
    }

    /** The latest benchmark measurement of one op, shape and device. */
    private static final class BenchmarkValues {
        volatile double throughput;
        volatile double efficiency;
    }

    /** Job counts by state, read at most once a second. */
    private static final class CachedCounts {
        private final Supplier<Map<String, Long>> source;
        private Map<String, Long> value = Map.of();
        private long readAt;

        CachedCounts(Supplier<Map<String, Long>> source) {
            this.source = source;
        }

        synchronized double get(String state) {
            long now = System.nanoTime();
            if (readAt == 0 || now - readAt > 1_000_000_000L) {
                try {
                    value = source.get();
                } catch (RuntimeException e) {
                    return Double.NaN; // the database is unreachable: no number is better than a stale one
                }
                readAt = now;
            }
            return value.getOrDefault(state, 0L);
        }
    }
}
