package io.whittle.kernels;

import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import jcuda.driver.CUcontext;
import jcuda.driver.CUdevice;
import jcuda.driver.CUdevice_attribute;
import jcuda.driver.CUfunction;
import jcuda.driver.CUmodule;
import jcuda.driver.JCudaDriver;

/**
 * One GPU, opened once per process: its properties, its primary context (the one cuBLAS and the runtime API also
 * use; contexts are made current per thread on every entry), and its loaded modules and kernels. Work is issued
 * through {@link CudaStream}s, one per worker. Never closed: the primary context lives as long as the process.
 */
public final class CudaDevice {

    private static final Map<Integer, CudaDevice> DEVICES = new ConcurrentHashMap<>();

    private final CUcontext context;
    private final DeviceProperties properties;
    private final ModuleLoader loader;
    private final Map<String, CUmodule> modules = new ConcurrentHashMap<>();
    private final Map<String, String> origins = Collections.synchronizedMap(new LinkedHashMap<>());
    private final Map<String, Kernel> kernels = new ConcurrentHashMap<>();

    private CudaDevice(int ordinal) {
        CUdevice device = new CUdevice();
        Driver.check(JCudaDriver.cuDeviceGet(device, ordinal), "cuDeviceGet", () -> "ordinal " + ordinal);
        context = new CUcontext();
        Driver.check(JCudaDriver.cuDevicePrimaryCtxRetain(context, device), "cuDevicePrimaryCtxRetain", () -> "cuda:" + ordinal);
        makeCurrent();
        properties = readProperties(ordinal, device);
        loader = ModuleLoader.fromEnvironment();
    }

    /**
     * The device with this ordinal, opened on first use.
     *
     * @throws CudaException when CUDA is not usable here (the probe's reason) or the device cannot be opened
     */
    public static CudaDevice open(int ordinal) {
        CudaProbe.Result probe = CudaProbe.probe();
        if (!probe.usable()) {
            throw new CudaException("CUDA is not usable on this machine: " + probe.reason(), "cuInit", 0);
        }
        if (ordinal < 0 || ordinal >= probe.deviceCount()) {
            throw new IllegalArgumentException("no CUDA device cuda:" + ordinal + "; " + probe.deviceCount() + " visible");
        }
        return DEVICES.computeIfAbsent(ordinal, CudaDevice::new);
    }

    private static DeviceProperties readProperties(int ordinal, CUdevice device) {
        byte[] name = new byte[256];
        Driver.check(JCudaDriver.cuDeviceGetName(name, name.length, device), "cuDeviceGetName");
        int len = 0;
        while (len < name.length && name[len] != 0) {
            len++;
        }
        long[] total = {0};
        Driver.check(JCudaDriver.cuDeviceTotalMem(total, device), "cuDeviceTotalMem");
        int[] version = {0};
        Driver.check(JCudaDriver.cuDriverGetVersion(version), "cuDriverGetVersion");
        return new DeviceProperties(ordinal, new String(name, 0, len, java.nio.charset.StandardCharsets.UTF_8).trim(),
                attribute(device, CUdevice_attribute.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR),
                attribute(device, CUdevice_attribute.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR),
                attribute(device, CUdevice_attribute.CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT), total[0],
                attribute(device, CUdevice_attribute.CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE),
                attribute(device, CUdevice_attribute.CU_DEVICE_ATTRIBUTE_MEMORY_CLOCK_RATE),
                attribute(device, CUdevice_attribute.CU_DEVICE_ATTRIBUTE_GLOBAL_MEMORY_BUS_WIDTH),
                attribute(device, CUdevice_attribute.CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK),
                attribute(device, CUdevice_attribute.CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN),
                attribute(device, CUdevice_attribute.CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK),
                attribute(device, CUdevice_attribute.CU_DEVICE_ATTRIBUTE_WARP_SIZE), version[0]);
    }

    private static int attribute(CUdevice device, int attribute) {
        int[] v = {0};
        Driver.check(JCudaDriver.cuDeviceGetAttribute(v, attribute, device), "cuDeviceGetAttribute", () -> "attribute " + attribute);
        return v[0];
    }

    public DeviceProperties properties() {
        return properties;
    }

    void makeCurrent() {
        Driver.makeCurrent(context);
    }

    /** Free and total memory of the whole device now (cuMemGetInfo). */
    public MemInfo memInfo() {
        makeCurrent();
        long[] free = {0};
        long[] total = {0};
        Driver.check(JCudaDriver.cuMemGetInfo(free, total), "cuMemGetInfo", () -> properties.id());
        return new MemInfo(free[0], total[0]);
    }

    /** A kernel entry point, loading its module on first use (prebuilt cubin, cache or NVRTC). */
    public Kernel kernel(String module, String function) {
        String key = module + "/" + function;
        Kernel k = kernels.get(key);
        if (k == null) {
            CUmodule m = module(module);
            synchronized (this) {
                k = kernels.get(key);
                if (k == null) {
                    makeCurrent();
                    CUfunction f = new CUfunction();
                    Driver.check(JCudaDriver.cuModuleGetFunction(f, m, function), "cuModuleGetFunction",
                            () -> "kernel " + function + " in " + module + " (" + origins.get(module) + ")");
                    k = new Kernel(module, function, f, properties.sharedMemoryPerBlock());
                    kernels.put(key, k);
                }
            }
        }
        return k;
    }

    private CUmodule module(String name) {
        CUmodule m = modules.get(name);
        if (m != null) {
            return m;
        }
        synchronized (this) {
            m = modules.get(name);
            if (m == null) {
                ModuleLoader.Image image = loader.load(name, properties.arch());
                makeCurrent();
                CUmodule loaded = new CUmodule();
                Driver.check(JCudaDriver.cuModuleLoadData(loaded, image.binary()), "cuModuleLoadData",
                        () -> "module " + name + " for " + properties.describe() + " from " + image.origin());
                origins.put(name, image.origin());
                modules.put(name, loaded);
                m = loaded;
            }
            return m;
        }
    }

    /** Loads every module now (the probe does this, so a broken installation is found at start-up). */
    public Map<String, String> loadAllModules() {
        for (String module : KernelSources.MODULES) {
            module(module);
        }
        return moduleOrigins();
    }

    /** Where each loaded module came from. */
    public Map<String, String> moduleOrigins() {
        synchronized (origins) {
            return new LinkedHashMap<>(origins);
        }
    }

    /** A new stream with its own device allocator (byte limit) and caches; close it when the worker is done. */
    public CudaStream newStream(String label, long memoryLimit) {
        return new CudaStream(this, label, memoryLimit);
    }

    @Override
    public String toString() {
        return properties.describe();
    }
}
