package io.whittle.kernels;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.List;
import java.util.function.Supplier;
import jcuda.Pointer;
import jcuda.driver.CUevent;
import jcuda.driver.CUevent_flags;
import jcuda.driver.CUstream;
import jcuda.driver.CUstream_flags;
import jcuda.driver.JCudaDriver;

/**
 * One worker's stream on a {@link CudaDevice}: every copy, memset, launch and GEMM it issues is ordered on it. It
 * owns the worker's {@link DeviceAllocator} (whose close fails on leaks), a caching layer for device memory,
 * kernel timings from CUDA events, and a cuBLAS handle bound to the stream (when cuBLAS loads).
 *
 * <p>Errors name the call, the code, the device, its free/total memory and, for launches, the kernel, grid,
 * block, shared memory and arguments. A fault inside a kernel surfaces at the next synchronisation; with
 * {@code whittle.cuda.sync-launches=true} (or {@code WHITTLE_CUDA_SYNC_LAUNCHES}) every launch synchronises, so the
 * error names the kernel that caused it (slower; for debugging and the GPU check).
 */
public final class CudaStream implements AutoCloseable {

    private static final int RECENT_LAUNCHES = 8;

    private final CudaDevice device;
    private final String label;
    private final CUstream stream;
    private final CachingDeviceMemory memory;
    private final DeviceAllocator allocator;
    private final KernelTimings timings;
    private final Deque<String> recent = new ArrayDeque<>();
    private final boolean syncLaunches;
    private ByteBuffer staging = ByteBuffer.allocateDirect(1 << 16).order(ByteOrder.nativeOrder());
    private Gemm gemm;
    private volatile boolean closed;

    CudaStream(CudaDevice device, String label, long memoryLimit) {
        this.device = device;
        this.label = label;
        device.makeCurrent();
        stream = new CUstream();
        Driver.check(JCudaDriver.cuStreamCreate(stream, CUstream_flags.CU_STREAM_NON_BLOCKING), "cuStreamCreate",
                () -> device.properties().id());
        memory = new CachingDeviceMemory(device, this::drain);
        allocator = DeviceAllocator.root(device.properties().id() + "/" + label, memory, memoryLimit);
        timings = new KernelTimings(stream);
        syncLaunches = Boolean.parseBoolean(setting("whittle.cuda.sync-launches", "WHITTLE_CUDA_SYNC_LAUNCHES"));
    }

    private static String setting(String property, String env) {
        String v = System.getProperty(property);
        return v != null ? v : System.getenv(env);
    }

    public CudaDevice device() {
        return device;
    }

    public DeviceProperties properties() {
        return device.properties();
    }

    /** The worker's allocator: allocate every device buffer from it (or from a child). */
    public DeviceAllocator allocator() {
        return allocator;
    }

    public KernelTimings timings() {
        return timings;
    }

    /** Bytes this stream holds from the device (in use plus cached for reuse). */
    public long heldBytes() {
        return memory.heldBytes();
    }

    /** Bytes freed by this stream's users and kept for reuse (counted as used by the device). */
    public long cachedBytes() {
        return memory.cachedBytes();
    }

    /** Returns cached, unused device memory to the device. */
    public void releaseCachedMemory() {
        enter();
        memory.release();
    }

    CUstream handle() {
        return stream;
    }

    private void enter() {
        if (closed) {
            throw new IllegalStateException(device.properties().id() + "/" + label + " - stream is closed");
        }
        device.makeCurrent();
    }

    /** Throws with the stream's context: device, memory, and the recent launches when the error is sticky. */
    void check(int rc, String call, Supplier<String> context) {
        if (rc == 0) {
            return;
        }
        StringBuilder msg = new StringBuilder(device.properties().id()).append(" - ").append(call).append(" failed: ")
                .append(Driver.name(rc)).append(" (").append(rc).append(")");
        String ctx = context == null ? null : context.get();
        if (ctx != null && !ctx.isEmpty()) {
            msg.append("; ").append(ctx);
        }
        msg.append("; ").append(device.properties().name()).append(" ").append(device.properties().arch());
        try {
            msg.append(", ").append(device.memInfo());
        } catch (RuntimeException e) {
            msg.append(", device memory unknown");
        }
        CudaException probe = new CudaException("", call, rc);
        if (probe.isSticky()) {
            synchronized (recent) {
                msg.append("; last launches on this stream: ").append(new ArrayList<>(recent));
            }
            msg.append("; the CUDA context is unusable after this error: restart the worker");
        }
        throw new CudaException(msg.toString(), call, rc);
    }

    // ---- launches --------------------------------------------------------------------------------------

    /**
     * Launches {@code kernel} on this stream. Shapes are checked against the device limits first (an
     * {@link IllegalArgumentException} naming the launch); shared memory above 48 KiB is enabled on the kernel.
     */
    public void launch(Kernel kernel, Dim3 grid, Dim3 block, int sharedBytes, KernelArgs args) {
        enter();
        DeviceProperties p = device.properties();
        Supplier<String> what = () -> "cuLaunchKernel(" + kernel + ", grid=" + grid + ", block=" + block + ", smem=" + sharedBytes
                + " B, args=" + args + ")";
        if (grid.x() < 1 || grid.y() < 1 || grid.z() < 1 || grid.y() > 65535 || grid.z() > 65535 || block.x() < 1 || block.y() < 1
                || block.z() < 1 || block.count() > p.maxThreadsPerBlock() || sharedBytes < 0
                || sharedBytes > Math.max(p.sharedMemoryPerBlock(), p.sharedMemoryPerBlockOptin())) {
            throw new IllegalArgumentException(p.id() + " - invalid launch " + what.get() + ": the device allows grid y, z <= 65535, "
                    + p.maxThreadsPerBlock() + " threads per block and " + p.sharedMemoryPerBlockOptin()
                    + " bytes of shared memory per block");
        }
        if (sharedBytes > p.sharedMemoryPerBlock()) {
            kernel.ensureDynamicSmem(sharedBytes);
        }
        CUevent[] timing = timings.isEnabled() ? timings.begin() : null;
        int rc = JCudaDriver.cuLaunchKernel(kernel.function(), grid.x(), grid.y(), grid.z(), block.x(), block.y(), block.z(),
                sharedBytes, stream, args.toPointer(), null);
        synchronized (recent) {
            if (recent.size() == RECENT_LAUNCHES) {
                recent.removeFirst();
            }
            recent.addLast(kernel + " grid=" + grid + " block=" + block);
        }
        check(rc, "cuLaunchKernel", () -> what.get().substring("cuLaunchKernel".length()));
        if (timing != null) {
            timings.end(kernel.toString(), timing);
        }
        if (syncLaunches) {
            check(JCudaDriver.cuStreamSynchronize(stream), "cuStreamSynchronize", () -> "after " + what.get());
        }
    }

    /** Waits for everything issued on this stream. */
    public void synchronize() {
        enter();
        drain();
    }

    /** Synchronises without the open check (the memory cache drains the stream while it closes). */
    private void drain() {
        device.makeCurrent();
        check(JCudaDriver.cuStreamSynchronize(stream), "cuStreamSynchronize", null);
    }

    /** GPU time of the work {@code body} issues on this stream, from two CUDA events (waits for it). */
    public double timeMillis(Runnable body) {
        enter();
        CUevent start = new CUevent();
        CUevent stop = new CUevent();
        Driver.check(JCudaDriver.cuEventCreate(start, CUevent_flags.CU_EVENT_DEFAULT), "cuEventCreate");
        Driver.check(JCudaDriver.cuEventCreate(stop, CUevent_flags.CU_EVENT_DEFAULT), "cuEventCreate");
        try {
            check(JCudaDriver.cuEventRecord(start, stream), "cuEventRecord", null);
            body.run();
            check(JCudaDriver.cuEventRecord(stop, stream), "cuEventRecord", null);
            check(JCudaDriver.cuEventSynchronize(stop), "cuEventSynchronize", null);
            float[] ms = {0};
            check(JCudaDriver.cuEventElapsedTime(ms, start, stop), "cuEventElapsedTime", null);
            return ms[0];
        } finally {
            JCudaDriver.cuEventDestroy(start);
            JCudaDriver.cuEventDestroy(stop);
        }
    }

    // ---- copies ----------------------------------------------------------------------------------------

    /**
     * Host (off-heap, e.g. a FloatTensor's address) to device. Returns once the host memory has been read (the
     * driver stages pageable memory), so the host buffer may be freed right after.
     */
    public void copyHostToDevice(long deviceAddress, long hostAddress, long bytes) {
        if (bytes == 0) {
            return;
        }
        enter();
        check(JCudaDriver.cuMemcpyHtoDAsync(Driver.device(deviceAddress), Driver.host(hostAddress), bytes, stream),
                "cuMemcpyHtoDAsync", () -> bytes + " bytes to 0x" + Long.toHexString(deviceAddress));
    }

    /** Device to host (off-heap); waits for the stream, so the data is there on return. */
    public void copyDeviceToHost(long hostAddress, long deviceAddress, long bytes) {
        if (bytes == 0) {
            return;
        }
        enter();
        check(JCudaDriver.cuMemcpyDtoHAsync(Driver.host(hostAddress), Driver.device(deviceAddress), bytes, stream),
                "cuMemcpyDtoHAsync", () -> bytes + " bytes from 0x" + Long.toHexString(deviceAddress));
        synchronize();
    }

    public void copyDeviceToDevice(long dst, long src, long bytes) {
        if (bytes == 0) {
            return;
        }
        enter();
        check(JCudaDriver.cuMemcpyDtoDAsync(Driver.device(dst), Driver.device(src), bytes, stream), "cuMemcpyDtoDAsync",
                () -> bytes + " bytes 0x" + Long.toHexString(src) + " -> 0x" + Long.toHexString(dst));
    }

    /** Sets {@code count} 32-bit words to {@code value} (e.g. 0, or NaN bits to poison). */
    public void memset32(long deviceAddress, int value, long count) {
        if (count == 0) {
            return;
        }
        enter();
        check(JCudaDriver.cuMemsetD32Async(Driver.device(deviceAddress), value, count, stream), "cuMemsetD32Async",
                () -> count + " words at 0x" + Long.toHexString(deviceAddress));
    }

    private synchronized ByteBuffer staging(long bytes) {
        if (staging.capacity() < bytes) {
            staging = ByteBuffer.allocateDirect(Math.toIntExact(Math.max(bytes, 2L * staging.capacity()))).order(ByteOrder.nativeOrder());
        }
        staging.clear();
        return staging;
    }

    private synchronized void uploadStaged(long deviceAddress, ByteBuffer data, long bytes) {
        enter();
        check(JCudaDriver.cuMemcpyHtoDAsync(Driver.device(deviceAddress), Pointer.to(data), bytes, stream), "cuMemcpyHtoDAsync",
                () -> bytes + " bytes to 0x" + Long.toHexString(deviceAddress));
    }

    public synchronized void upload(long deviceAddress, int[] values) {
        uploadArray(deviceAddress, 4L * values.length, b -> b.asIntBuffer().put(values));
    }

    public synchronized void upload(long deviceAddress, long[] values) {
        uploadArray(deviceAddress, 8L * values.length, b -> b.asLongBuffer().put(values));
    }

    public synchronized void upload(long deviceAddress, float[] values) {
        uploadArray(deviceAddress, 4L * values.length, b -> b.asFloatBuffer().put(values));
    }

    /** Fills the staging buffer with {@code bytes} bytes and copies them to the device (nothing for an empty array). */
    private void uploadArray(long deviceAddress, long bytes, java.util.function.Consumer<ByteBuffer> fill) {
        if (bytes == 0) {
            return;
        }
        ByteBuffer b = staging(bytes);
        fill.accept(b);
        uploadStaged(deviceAddress, b, bytes);
    }

    private synchronized ByteBuffer download(long deviceAddress, long bytes) {
        ByteBuffer b = staging(bytes);
        enter();
        check(JCudaDriver.cuMemcpyDtoHAsync(Pointer.to(b), Driver.device(deviceAddress), bytes, stream), "cuMemcpyDtoHAsync",
                () -> bytes + " bytes from 0x" + Long.toHexString(deviceAddress));
        synchronize();
        return b;
    }

    public synchronized int[] downloadInts(long deviceAddress, int count) {
        int[] out = new int[count];
        if (count > 0) {
            download(deviceAddress, 4L * count).asIntBuffer().get(out);
        }
        return out;
    }

    public synchronized float[] downloadFloats(long deviceAddress, int count) {
        float[] out = new float[count];
        if (count > 0) {
            download(deviceAddress, 4L * count).asFloatBuffer().get(out);
        }
        return out;
    }

    public synchronized double[] downloadDoubles(long deviceAddress, int count) {
        double[] out = new double[count];
        if (count > 0) {
            download(deviceAddress, 8L * count).asDoubleBuffer().get(out);
        }
        return out;
    }

    // ---- matrix multiply -------------------------------------------------------------------------------

    /** The stream's GEMM: cuBLAS where libcublas.so.12 loads, Whittle's kernels otherwise. */
    public synchronized Gemm gemm() {
        enter();
        if (gemm == null) {
            gemm = new Gemm(this);
        }
        return gemm;
    }

    /**
     * Synchronises, closes the allocator (an {@link IllegalStateException} when buffers leaked; they are freed
     * first), returns the cached memory and destroys the stream.
     */
    @Override
    public void close() {
        if (closed) {
            return;
        }
        RuntimeException failure = null;
        try {
            synchronize();
        } catch (RuntimeException e) {
            failure = e;
        }
        closed = true;
        List<Runnable> steps = List.of(timings::close, () -> {
            if (gemm != null) {
                gemm.close();
            }
        }, allocator::close, () -> {
            device.makeCurrent();
            memory.release();
        }, () -> JCudaDriver.cuStreamDestroy(stream));
        for (Runnable step : steps) {
            try {
                step.run();
            } catch (RuntimeException e) {
                if (failure == null) {
                    failure = e;
                } else {
                    failure.addSuppressed(e);
                }
            }
        }
        if (failure != null) {
            throw failure;
        }
    }

    @Override
    public String toString() {
        return device.properties().id() + "/" + label;
    }
}
