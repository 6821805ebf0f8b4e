package io.whittle.kernels;

import java.util.ArrayDeque;
import java.util.HashMap;
import java.util.Map;
import jcuda.driver.CUresult;
import jcuda.driver.JCudaDriver;

/**
 * Device memory for one stream, with freed blocks kept for reuse by size class (as PyTorch's caching allocator
 * does): cuMemAlloc and cuMemFree are slow and cuMemFree synchronises the device, while a decoder layer frees
 * and reallocates the same activation sizes many times. Reuse is safe without synchronisation because every
 * user of these blocks is ordered on the one stream. When the device runs out, the cache is released (after a
 * stream synchronisation) and the allocation retried once.
 */
final class CachingDeviceMemory implements DeviceMemory {

    private final CudaDevice device;
    private final Runnable synchronizeStream;
    private final Map<Long, Long> classOf = new HashMap<>();
    private final Map<Long, ArrayDeque<Long>> cached = new HashMap<>();
    private long cachedBytes;
    private long heldBytes;

    CachingDeviceMemory(CudaDevice device, Runnable synchronizeStream) {
        this.device = device;
        this.synchronizeStream = synchronizeStream;
    }

    /** Rounds up to at most 25% more, so blocks of nearby sizes share a class. */
    static long sizeClass(long bytes) {
        if (bytes <= 512) {
            return 512;
        }
        long granularity = Math.max(512, Long.highestOneBit(bytes) / 4);
        return (bytes + granularity - 1) / granularity * granularity;
    }

    @Override
    public synchronized long allocate(long bytes) {
        long cls = sizeClass(bytes);
        ArrayDeque<Long> free = cached.get(cls);
        if (free != null && !free.isEmpty()) {
            long address = free.pop();
            cachedBytes -= cls;
            return address;
        }
        device.makeCurrent();
        Driver.DevicePtr p = new Driver.DevicePtr();
        int rc = JCudaDriver.cuMemAlloc(p, cls);
        if (rc == CUresult.CUDA_ERROR_OUT_OF_MEMORY && cachedBytes > 0) {
            release();
            rc = JCudaDriver.cuMemAlloc(p, cls);
        }
        if (rc != CUresult.CUDA_SUCCESS) {
            throw new DeviceOutOfMemoryException("cuMemAlloc(" + Bytes.format(cls) + ") failed: " + Driver.name(rc) + " (" + rc + "); "
                    + describe(), bytes, null);
        }
        long address = p.address();
        classOf.put(address, cls);
        heldBytes += cls;
        return address;
    }

    @Override
    public synchronized void free(long address) {
        Long cls = classOf.get(address);
        if (cls == null) {
            throw new IllegalArgumentException("device address 0x" + Long.toHexString(address) + " was not allocated here");
        }
        cached.computeIfAbsent(cls, c -> new ArrayDeque<>()).push(address);
        cachedBytes += cls;
    }

    /** Returns every cached block to the device (after the stream has finished with them). */
    synchronized void release() {
        if (cachedBytes == 0) {
            return;
        }
        synchronizeStream.run();
        device.makeCurrent();
        for (Map.Entry<Long, ArrayDeque<Long>> e : cached.entrySet()) {
            for (long address : e.getValue()) {
                Driver.check(JCudaDriver.cuMemFree(Driver.device(address)), "cuMemFree");
                classOf.remove(address);
                heldBytes -= e.getKey();
            }
            e.getValue().clear();
        }
        cachedBytes = 0;
    }

    synchronized long cachedBytes() {
        return cachedBytes;
    }

    /** Bytes this stream holds from the device, in use or cached. */
    synchronized long heldBytes() {
        return heldBytes;
    }

    @Override
    public String describe() {
        String mem;
        try {
            mem = device.memInfo().toString();
        } catch (RuntimeException e) {
            mem = "device memory unknown (" + e.getMessage() + ")";
        }
        return mem + ", held by this stream=" + Bytes.format(heldBytes()) + " (cached " + Bytes.format(cachedBytes()) + ")";
    }
}
