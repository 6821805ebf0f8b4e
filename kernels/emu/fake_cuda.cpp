// A stand-in for the CUDA driver (libcuda.so.1) that runs Whittle's kernels on the CPU, so the whole Java stack
// (probe, context, allocator, module loading, launches, the CUDA backend and its conformance suite) can be
// exercised on a machine without a GPU. Test tooling only: it is put on LD_LIBRARY_PATH explicitly by
// kernels/emu/run-conformance.sh and never ships.
//
// "Device" memory is host memory (the kernels dereference it directly). A "cubin" is a host shared library that
// kernels/emu/build.sh compiles from a module's .cu with the emulator runtime; cuModuleLoadData writes it to a
// temporary file and dlopens it. Launches run synchronously on the calling thread; streams and events follow.
// Fresh allocations are filled with 0xFF bytes (NaN as floats) so reads of uninitialised memory show, and each
// one ends (rounded up to 256 bytes) at an inaccessible guard page, so a kernel that runs off the end of a buffer
// crashes the process at the faulting access instead of passing by luck.
// A kernel fault (a barrier not every thread reaches, a diverged warp collective, __trap) is printed to stderr
// and fails the launch with CUDA_ERROR_LAUNCH_FAILED; like on hardware, the context then stays broken.
#include <dlfcn.h>
#include <elf.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <string>

typedef int CUresult;
typedef int CUdevice;
typedef unsigned long long CUdeviceptr;
typedef void* CUcontext;
typedef void* CUstream;

enum {
    CUDA_SUCCESS = 0,
    CUDA_ERROR_INVALID_VALUE = 1,
    CUDA_ERROR_OUT_OF_MEMORY = 2,
    CUDA_ERROR_INVALID_DEVICE = 101,
    CUDA_ERROR_INVALID_IMAGE = 200,
    CUDA_ERROR_INVALID_HANDLE = 400,
    CUDA_ERROR_NOT_FOUND = 500,
    CUDA_ERROR_LAUNCH_FAILED = 719,
};

namespace {

const size_t kTotalMemory = 8ull << 30;  // what the emulated device reports

struct Module {
    void* handle;
    int (*launch)(const char*, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, void**, char*, int);
    int (*has)(const char*);
    std::string file;
};

struct Function {
    Module* module;
    std::string name;
    int maxDynamicSmem = 48 * 1024;
};

struct Event {
    double ms = 0;
};

std::mutex g_mutex;
struct Allocation {
    size_t bytes;
    void* base;
    size_t mapped;
};
std::map<CUdeviceptr, Allocation> g_allocations;
size_t g_allocated = 0;
CUresult g_sticky = CUDA_SUCCESS;
int g_context = 1;

double nowMs() {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

bool validRange(CUdeviceptr p, size_t bytes) {
    auto it = g_allocations.upper_bound(p);
    if (it == g_allocations.begin()) {
        return false;
    }
    --it;
    return p >= it->first && p + bytes <= it->first + it->second.bytes;
}

// ELF image size: the section header table is the last thing in files our build writes.
size_t elfSize(const void* image) {
    const Elf64_Ehdr* h = static_cast<const Elf64_Ehdr*>(image);
    if (memcmp(h->e_ident, ELFMAG, SELFMAG) != 0 || h->e_ident[EI_CLASS] != ELFCLASS64) {
        return 0;
    }
    return h->e_shoff + (size_t) h->e_shnum * h->e_shentsize;
}

}  // namespace

#define LOCK std::lock_guard<std::mutex> lock(g_mutex)
#define STICKY               \
    if (g_sticky != CUDA_SUCCESS) { \
        return g_sticky;     \
    }

extern "C" {

CUresult cuInit(unsigned int) { return CUDA_SUCCESS; }

CUresult cuDriverGetVersion(int* v) {
    *v = 13000;
    return CUDA_SUCCESS;
}

CUresult cuDeviceGetCount(int* n) {
    *n = 1;
    return CUDA_SUCCESS;
}

CUresult cuDeviceGet(CUdevice* d, int ordinal) {
    if (ordinal != 0) {
        return CUDA_ERROR_INVALID_DEVICE;
    }
    *d = 0;
    return CUDA_SUCCESS;
}

CUresult cuDeviceGetName(char* name, int len, CUdevice) {
    snprintf(name, (size_t) len, "%s", "Whittle CUDA emulator (CPU, not a GPU)");
    return CUDA_SUCCESS;
}

CUresult cuDeviceGetAttribute(int* v, int attribute, CUdevice) {
    switch (attribute) {
        case 1: *v = 1024; break;             // max threads per block
        case 5: *v = 2147483647; break;       // max grid x
        case 6: case 7: *v = 65535; break;    // max grid y, z
        case 8: *v = 49152; break;            // shared memory per block
        case 10: *v = 32; break;              // warp size
        case 12: *v = 65536; break;           // registers per block
        case 13: *v = 1000000; break;         // clock kHz
        case 16: *v = 4; break;               // multiprocessors
        case 36: *v = 1000000; break;         // memory clock kHz
        case 37: *v = 128; break;             // bus width bits
        case 38: *v = 4 << 20; break;         // L2 bytes
        case 39: *v = 2048; break;            // threads per multiprocessor
        case 75: *v = 9; break;               // compute capability 9.0: loads the sm_90 "cubins"
        case 76: *v = 0; break;
        case 81: *v = 233472; break;          // shared memory per multiprocessor
        case 97: *v = 232448; break;          // opt-in shared memory per block
        default: *v = 0; break;
    }
    return CUDA_SUCCESS;
}

CUresult cuDeviceTotalMem_v2(size_t* bytes, CUdevice) {
    *bytes = kTotalMemory;
    return CUDA_SUCCESS;
}

CUresult cuDevicePrimaryCtxRetain(CUcontext* ctx, CUdevice) {
    *ctx = &g_context;
    return CUDA_SUCCESS;
}

CUresult cuDevicePrimaryCtxRelease_v2(CUdevice) { return CUDA_SUCCESS; }
CUresult cuCtxSetCurrent(CUcontext) { return CUDA_SUCCESS; }

CUresult cuCtxGetCurrent(CUcontext* ctx) {
    *ctx = &g_context;
    return CUDA_SUCCESS;
}

CUresult cuCtxSynchronize() {
    LOCK;
    return g_sticky;
}

CUresult cuMemGetInfo_v2(size_t* freeBytes, size_t* totalBytes) {
    LOCK;
    *freeBytes = kTotalMemory - g_allocated;
    *totalBytes = kTotalMemory;
    return CUDA_SUCCESS;
}

CUresult cuMemAlloc_v2(CUdeviceptr* p, size_t bytes) {
    LOCK;
    STICKY;
    if (bytes == 0) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    if (g_allocated + bytes > kTotalMemory) {
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    const size_t page = 4096;
    size_t rounded = (bytes + 255) & ~(size_t) 255;
    size_t pages = (rounded + page - 1) / page;
    size_t mapped = (pages + 1) * page;
    void* base = mmap(nullptr, mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED) {
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    char* guard = static_cast<char*>(base) + pages * page;
    mprotect(guard, page, PROT_NONE);
    char* mem = guard - rounded;
    memset(mem, 0xff, rounded);
    *p = (CUdeviceptr) mem;
    g_allocations[*p] = Allocation{bytes, base, mapped};
    g_allocated += bytes;
    return CUDA_SUCCESS;
}

CUresult cuMemFree_v2(CUdeviceptr p) {
    LOCK;
    auto it = g_allocations.find(p);
    if (it == g_allocations.end()) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    g_allocated -= it->second.bytes;
    munmap(it->second.base, it->second.mapped);
    g_allocations.erase(it);
    return CUDA_SUCCESS;
}

CUresult cuMemAllocHost_v2(void** p, size_t bytes) {
    *p = aligned_alloc(4096, (bytes + 4095) & ~(size_t) 4095);
    return *p ? CUDA_SUCCESS : CUDA_ERROR_OUT_OF_MEMORY;
}

CUresult cuMemHostAlloc(void** p, size_t bytes, unsigned int) { return cuMemAllocHost_v2(p, bytes); }

CUresult cuMemFreeHost(void* p) {
    free(p);
    return CUDA_SUCCESS;
}

static CUresult copyChecked(void* dst, const void* src, size_t bytes, bool dstDevice, bool srcDevice) {
    LOCK;
    STICKY;
    if ((dstDevice && !validRange((CUdeviceptr) dst, bytes)) || (srcDevice && !validRange((CUdeviceptr) src, bytes))) {
        fprintf(stderr, "[fake libcuda] copy of %zu bytes outside any allocation (dst %p%s, src %p%s)\n", bytes, dst,
                dstDevice ? " device" : "", src, srcDevice ? " device" : "");
        return CUDA_ERROR_INVALID_VALUE;
    }
    memmove(dst, src, bytes);
    return CUDA_SUCCESS;
}

CUresult cuMemcpyHtoD_v2(CUdeviceptr dst, const void* src, size_t bytes) {
    return copyChecked((void*) dst, src, bytes, true, false);
}
CUresult cuMemcpyDtoH_v2(void* dst, CUdeviceptr src, size_t bytes) {
    return copyChecked(dst, (const void*) src, bytes, false, true);
}
CUresult cuMemcpyDtoD_v2(CUdeviceptr dst, CUdeviceptr src, size_t bytes) {
    return copyChecked((void*) dst, (const void*) src, bytes, true, true);
}
CUresult cuMemcpyHtoDAsync_v2(CUdeviceptr dst, const void* src, size_t bytes, CUstream) {
    return cuMemcpyHtoD_v2(dst, src, bytes);
}
CUresult cuMemcpyDtoHAsync_v2(void* dst, CUdeviceptr src, size_t bytes, CUstream) {
    return cuMemcpyDtoH_v2(dst, src, bytes);
}
CUresult cuMemcpyDtoDAsync_v2(CUdeviceptr dst, CUdeviceptr src, size_t bytes, CUstream) {
    return cuMemcpyDtoD_v2(dst, src, bytes);
}

CUresult cuMemsetD32_v2(CUdeviceptr dst, unsigned int value, size_t n) {
    LOCK;
    STICKY;
    if (!validRange(dst, n * 4)) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    unsigned int* p = (unsigned int*) dst;
    for (size_t i = 0; i < n; i++) {
        p[i] = value;
    }
    return CUDA_SUCCESS;
}
CUresult cuMemsetD8_v2(CUdeviceptr dst, unsigned char value, size_t n) {
    LOCK;
    STICKY;
    if (!validRange(dst, n)) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    memset((void*) dst, value, n);
    return CUDA_SUCCESS;
}
CUresult cuMemsetD32Async(CUdeviceptr dst, unsigned int value, size_t n, CUstream) { return cuMemsetD32_v2(dst, value, n); }
CUresult cuMemsetD8Async(CUdeviceptr dst, unsigned char value, size_t n, CUstream) { return cuMemsetD8_v2(dst, value, n); }

CUresult cuStreamCreate(CUstream* s, unsigned int) {
    *s = new int(0);
    return CUDA_SUCCESS;
}
CUresult cuStreamDestroy_v2(CUstream s) {
    delete static_cast<int*>(s);
    return CUDA_SUCCESS;
}
CUresult cuStreamSynchronize(CUstream) {
    LOCK;
    return g_sticky;
}
CUresult cuStreamQuery(CUstream) {
    LOCK;
    return g_sticky;
}

CUresult cuEventCreate(void** e, unsigned int) {
    *e = new Event();
    return CUDA_SUCCESS;
}
CUresult cuEventDestroy_v2(void* e) {
    delete static_cast<Event*>(e);
    return CUDA_SUCCESS;
}
CUresult cuEventRecord(void* e, CUstream) {
    static_cast<Event*>(e)->ms = nowMs();
    return CUDA_SUCCESS;
}
CUresult cuEventSynchronize(void*) {
    LOCK;
    return g_sticky;
}
CUresult cuEventElapsedTime(float* ms, void* start, void* end) {
    *ms = (float) (static_cast<Event*>(end)->ms - static_cast<Event*>(start)->ms);
    return CUDA_SUCCESS;
}
CUresult cuEventElapsedTime_v2(float* ms, void* start, void* end) { return cuEventElapsedTime(ms, start, end); }

CUresult cuModuleLoadData(void** module, const void* image) {
    size_t size = elfSize(image);
    if (size == 0) {
        return CUDA_ERROR_INVALID_IMAGE;
    }
    char path[] = "/tmp/whittle-emu-module-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    bool ok = write(fd, image, size) == (ssize_t) size;
    close(fd);
    if (!ok) {
        unlink(path);
        return CUDA_ERROR_INVALID_VALUE;
    }
    void* handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    unlink(path);
    if (!handle) {
        fprintf(stderr, "[fake libcuda] cannot load module: %s\n", dlerror());
        return CUDA_ERROR_INVALID_IMAGE;
    }
    Module* m = new Module();
    m->handle = handle;
    m->launch = (decltype(m->launch)) dlsym(handle, "whittle_emu_launch");
    m->has = (decltype(m->has)) dlsym(handle, "whittle_emu_has_kernel");
    if (!m->launch || !m->has) {
        dlclose(handle);
        delete m;
        return CUDA_ERROR_INVALID_IMAGE;
    }
    *module = m;
    return CUDA_SUCCESS;
}

CUresult cuModuleUnload(void* module) {
    Module* m = static_cast<Module*>(module);
    dlclose(m->handle);
    delete m;
    return CUDA_SUCCESS;
}

CUresult cuModuleGetFunction(void** function, void* module, const char* name) {
    Module* m = static_cast<Module*>(module);
    if (!m->has(name)) {
        return CUDA_ERROR_NOT_FOUND;
    }
    Function* f = new Function();
    f->module = m;
    f->name = name;
    *function = f;
    return CUDA_SUCCESS;
}

CUresult cuFuncSetAttribute(void* function, int attribute, int value) {
    Function* f = static_cast<Function*>(function);
    if (attribute == 8) {  // CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES
        if (value > 232448) {
            return CUDA_ERROR_INVALID_VALUE;
        }
        f->maxDynamicSmem = value;
    }
    return CUDA_SUCCESS;
}

CUresult cuFuncGetAttribute(int* v, int attribute, void* function) {
    Function* f = static_cast<Function*>(function);
    *v = attribute == 8 ? f->maxDynamicSmem : attribute == 0 ? 1024 : 0;
    return CUDA_SUCCESS;
}

CUresult cuLaunchKernel(void* function, unsigned int gx, unsigned int gy, unsigned int gz, unsigned int bx, unsigned int by,
                        unsigned int bz, unsigned int smem, CUstream, void** params, void** extra) {
    LOCK;
    STICKY;
    Function* f = static_cast<Function*>(function);
    unsigned long long threads = (unsigned long long) bx * by * bz;
    if (extra != nullptr || threads == 0 || threads > 1024 || gx == 0 || gy == 0 || gz == 0 || gy > 65535 || gz > 65535 ||
        (int) smem > f->maxDynamicSmem) {
        fprintf(stderr, "[fake libcuda] invalid launch of %s: grid (%u,%u,%u) block (%u,%u,%u) smem %u (max %d)\n",
                f->name.c_str(), gx, gy, gz, bx, by, bz, smem, f->maxDynamicSmem);
        return CUDA_ERROR_INVALID_VALUE;
    }
    char error[1024] = {0};
    int rc = f->module->launch(f->name.c_str(), gx, gy, gz, bx, by, bz, smem, params, error, (int) sizeof error);
    if (rc != 0) {
        fprintf(stderr, "[fake libcuda] kernel fault: %s\n", error);
        g_sticky = CUDA_ERROR_LAUNCH_FAILED;
        return g_sticky;
    }
    return CUDA_SUCCESS;
}

CUresult cuGetErrorName(CUresult, const char** s) {
    *s = "CUDA_ERROR (emulated)";
    return CUDA_SUCCESS;
}
CUresult cuGetErrorString(CUresult, const char** s) {
    *s = "error (emulated driver)";
    return CUDA_SUCCESS;
}

}  // extern "C"
