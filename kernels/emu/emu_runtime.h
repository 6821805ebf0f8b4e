// CPU emulation of the CUDA execution model, for testing Whittle's kernels on machines without a GPU.
//
// Test tooling only: it never ships, and nothing in production loads it. A module (.cu) compiles as host C++
// with -DWH_EMU; this header supplies what the kernels use: thread/block indices, __syncthreads, warp shuffles,
// the bf16 tensor-core mma (computed from its documented fragment layout), shared memory and math built-ins.
//
// Every thread of a block is a fiber (ucontext) on the launching OS thread; blocks run one after another. A
// fiber runs until it reaches a barrier (__syncthreads, or a warp collective) or exits; then the scheduler
// releases barriers whose participants have all arrived. That makes the emulator strict where hardware is
// forgiving: a __syncthreads that not every thread reaches, a warp collective with exited or diverged lanes,
// or a deadlock fails the launch with a description instead of hanging or passing by luck. What it cannot
// show: data races that hardware timing would expose, memory-model subtleties, and speed.
#pragma once

#include <ucontext.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

struct dim3 {
    unsigned int x, y, z;
    constexpr dim3(unsigned int x_ = 1, unsigned int y_ = 1, unsigned int z_ = 1) : x(x_), y(y_), z(z_) {}
};
typedef dim3 uint3;

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__
#define __shared__ static
#define __align__(n) __attribute__((aligned(n)))
#define __launch_bounds__(...)

// Launch state: one launch at a time per module (the fake driver serialises launches).
static dim3 threadIdx, blockIdx, blockDim, gridDim;
static const int warpSize = 32;

namespace emu {

enum State { RUNNABLE, DONE, WAIT_BLOCK, WAIT_WARP };

struct Fiber {
    ucontext_t ctx;
    char* stack = nullptr;
    State state = DONE;
    dim3 tid;
    long long warpOps = 0;  // warp collectives this thread has entered (all lanes must agree)
};

struct Launch {
    void (*trampoline)(void**) = nullptr;
    void** params = nullptr;
    std::vector<Fiber> fibers;
    ucontext_t scheduler;
    int current = -1;
    std::vector<unsigned char> dynamicSmem;
    // per warp exchange slots for shuffles and mma fragments
    std::vector<unsigned long long> shuffle;  // [warps][32]
    std::vector<unsigned int> mmaA;           // [warps][32][4]
    std::vector<unsigned int> mmaB;           // [warps][32][2]
    std::string error;
};

static Launch* g_launch = nullptr;

// Fiber stacks, reused across launches (allocating and zeroing them per launch would dominate small launches).
static const size_t kStackBytes = 128 * 1024;
static std::vector<char*> g_stacks;

static inline char* stackFor(int i) {
    while ((int) g_stacks.size() <= i) {
        g_stacks.push_back(static_cast<char*>(malloc(kStackBytes)));
    }
    return g_stacks[i];
}

[[noreturn]] static inline void fail(const std::string& message) {
    // abort the launch from inside a fiber: record and unwind to the scheduler forever
    g_launch->error = message;
    Fiber& f = g_launch->fibers[g_launch->current];
    f.state = DONE;
    for (;;) {
        swapcontext(&f.ctx, &g_launch->scheduler);
    }
}

static inline void yield(State s) {
    Fiber& f = g_launch->fibers[g_launch->current];
    f.state = s;
    swapcontext(&f.ctx, &g_launch->scheduler);
}

static inline int linearThread() {
    return (int) (threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z));
}

static inline void warpBarrier() {
    Fiber& f = g_launch->fibers[g_launch->current];
    f.warpOps++;
    yield(WAIT_WARP);
}

static void fiberEntry() {
    g_launch->trampoline(g_launch->params);
    g_launch->fibers[g_launch->current].state = DONE;
    // returning resumes uc_link (the scheduler)
}

static inline std::string describeBlock() {
    char buf[160];
    snprintf(buf, sizeof buf, "block (%u,%u,%u) of grid (%u,%u,%u), block dim (%u,%u,%u)", blockIdx.x, blockIdx.y, blockIdx.z,
             gridDim.x, gridDim.y, gridDim.z, blockDim.x, blockDim.y, blockDim.z);
    return buf;
}

// Runs one block to completion; returns false with g_launch->error set on a fault.
static bool runBlock(Launch& L) {
    const int n = (int) L.fibers.size();
    for (int i = 0; i < n; i++) {
        Fiber& f = L.fibers[i];
        f.state = RUNNABLE;
        f.warpOps = 0;
        getcontext(&f.ctx);
        f.ctx.uc_stack.ss_sp = f.stack;
        f.ctx.uc_stack.ss_size = kStackBytes;
        f.ctx.uc_link = &L.scheduler;
        makecontext(&f.ctx, fiberEntry, 0);
    }
    // uninitialised shared memory on a GPU holds garbage: make reads before writes visible (NaN pattern)
    if (!L.dynamicSmem.empty()) {
        memset(L.dynamicSmem.data(), 0xff, L.dynamicSmem.size());
    }
    const int warps = (n + 31) / 32;
    for (;;) {
        for (int i = 0; i < n; i++) {
            if (L.fibers[i].state == RUNNABLE) {
                L.current = i;
                threadIdx = L.fibers[i].tid;
                swapcontext(&L.scheduler, &L.fibers[i].ctx);
                if (!L.error.empty()) {
                    L.error += " in " + describeBlock() + ", thread " + std::to_string(i);
                    return false;
                }
            }
        }
        int done = 0, atBlock = 0, atWarp = 0;
        for (int i = 0; i < n; i++) {
            State s = L.fibers[i].state;
            done += s == DONE;
            atBlock += s == WAIT_BLOCK;
            atWarp += s == WAIT_WARP;
        }
        if (done == n) {
            return true;
        }
        bool released = false;
        for (int w = 0; w < warps; w++) {
            int lo = w * 32, hi = lo + 32 < n ? lo + 32 : n;
            int waiting = 0;
            for (int i = lo; i < hi; i++) {
                waiting += L.fibers[i].state == WAIT_WARP;
            }
            if (waiting == 0) {
                continue;
            }
            if (waiting != hi - lo) {
                if (atBlock + done + atWarp == n) {
                    L.error = "warp collective reached by " + std::to_string(waiting) + " of " + std::to_string(hi - lo) +
                              " lanes of warp " + std::to_string(w) + " (others exited or wait at __syncthreads) in " +
                              describeBlock();
                    return false;
                }
                continue;
            }
            if (hi - lo != 32) {
                L.error = "warp collective with a full mask in a partial warp of " + std::to_string(hi - lo) +
                          " threads (block size not a multiple of 32) in " + describeBlock();
                return false;
            }
            long long ops = L.fibers[lo].warpOps;
            for (int i = lo; i < hi; i++) {
                if (L.fibers[i].warpOps != ops) {
                    L.error = "lanes of warp " + std::to_string(w) + " are in different warp collectives in " + describeBlock();
                    return false;
                }
            }
            for (int i = lo; i < hi; i++) {
                L.fibers[i].state = RUNNABLE;
            }
            released = true;
        }
        if (released) {
            continue;
        }
        if (atBlock == n) {
            for (int i = 0; i < n; i++) {
                L.fibers[i].state = RUNNABLE;
            }
            continue;
        }
        if (atBlock > 0 && atBlock + done == n) {
            L.error = "__syncthreads reached by " + std::to_string(atBlock) + " of " + std::to_string(n) +
                      " threads (the others exited) in " + describeBlock();
        } else {
            L.error = "deadlock: " + std::to_string(atBlock) + " threads at __syncthreads, " + std::to_string(atWarp) +
                      " in warp collectives, " + std::to_string(done) + " exited in " + describeBlock();
        }
        return false;
    }
}

// Runs a whole grid. Returns an empty string or the fault.
static inline std::string launch(void (*trampoline)(void**), dim3 grid, dim3 block, unsigned int smemBytes, void** params) {
    Launch L;
    L.trampoline = trampoline;
    L.params = params;
    const int n = (int) (block.x * block.y * block.z);
    if (n <= 0 || n > 1024) {
        return "invalid block size " + std::to_string(n);
    }
    L.fibers.resize(n);
    for (int i = 0; i < n; i++) {
        L.fibers[i].stack = stackFor(i);
        L.fibers[i].tid = dim3(i % block.x, (i / block.x) % block.y, i / (block.x * block.y));
    }
    L.dynamicSmem.resize(smemBytes);
    const int warps = (n + 31) / 32;
    L.shuffle.resize((size_t) warps * 32);
    L.mmaA.resize((size_t) warps * 32 * 4);
    L.mmaB.resize((size_t) warps * 32 * 2);
    Launch* previous = g_launch;
    g_launch = &L;
    blockDim = block;
    gridDim = grid;
    std::string result;
    for (unsigned int z = 0; z < grid.z && result.empty(); z++) {
        for (unsigned int y = 0; y < grid.y && result.empty(); y++) {
            for (unsigned int x = 0; x < grid.x && result.empty(); x++) {
                blockIdx = dim3(x, y, z);
                if (!runBlock(L)) {
                    result = L.error;
                }
            }
        }
    }
    g_launch = previous;
    return result;
}

template <typename T>
static inline T shuffle(T v, int srcLaneOf(int lane, int arg), int arg) {
    static_assert(sizeof(T) <= 8, "shuffle of a value wider than 8 bytes");
    const int t = linearThread();
    const int warp = t / 32, lane = t % 32;
    unsigned long long bits = 0;
    memcpy(&bits, &v, sizeof(T));
    g_launch->shuffle[warp * 32 + lane] = bits;
    warpBarrier();
    int src = srcLaneOf(lane, arg);
    T out = v;
    if (src >= 0 && src < 32) {
        unsigned long long b = g_launch->shuffle[warp * 32 + src];
        memcpy(&out, &b, sizeof(T));
    }
    warpBarrier();  // nobody overwrites a slot before every lane has read
    return out;
}

static inline int laneXor(int lane, int mask) { return lane ^ mask; }
static inline int laneDirect(int, int src) { return src & 31; }
static inline int laneDown(int lane, int delta) { return lane + delta < 32 ? lane + delta : lane; }
static inline int laneUp(int lane, int delta) { return lane - delta >= 0 ? lane - delta : lane; }

static inline void checkFullMask(unsigned int mask) {
    if (mask != 0xffffffffu) {
        fail("warp collective with a partial mask (Whittle kernels use full warps only)");
    }
}

static inline float bf16(unsigned int bits16) {
    unsigned int b = (bits16 & 0xffffu) << 16;
    float f;
    memcpy(&f, &b, 4);
    return f;
}

}  // namespace emu

// ---- CUDA built-ins --------------------------------------------------------------------------------------

static inline void __syncthreads() { emu::yield(emu::WAIT_BLOCK); }
static inline void __syncwarp(unsigned int mask = 0xffffffffu) {
    emu::checkFullMask(mask);
    emu::warpBarrier();
}
static inline void __threadfence() {}
static inline void __threadfence_block() {}

template <typename T>
static inline T __shfl_xor_sync(unsigned int mask, T v, int laneMask, int = 32) {
    emu::checkFullMask(mask);
    return emu::shuffle<T>(v, emu::laneXor, laneMask);
}
template <typename T>
static inline T __shfl_sync(unsigned int mask, T v, int srcLane, int = 32) {
    emu::checkFullMask(mask);
    return emu::shuffle<T>(v, emu::laneDirect, srcLane);
}
template <typename T>
static inline T __shfl_down_sync(unsigned int mask, T v, unsigned int delta, int = 32) {
    emu::checkFullMask(mask);
    return emu::shuffle<T>(v, emu::laneDown, (int) delta);
}
template <typename T>
static inline T __shfl_up_sync(unsigned int mask, T v, unsigned int delta, int = 32) {
    emu::checkFullMask(mask);
    return emu::shuffle<T>(v, emu::laneUp, (int) delta);
}

static inline unsigned char* emu_dynamic_smem() { return emu::g_launch->dynamicSmem.data(); }

static inline float __uint_as_float(unsigned int u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static inline unsigned int __float_as_uint(float f) {
    unsigned int u;
    memcpy(&u, &f, 4);
    return u;
}
static inline float __int_as_float(int u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static inline int __float_as_int(float f) {
    int u;
    memcpy(&u, &f, 4);
    return u;
}
static inline double __longlong_as_double(long long u) {
    double d;
    memcpy(&d, &u, 8);
    return d;
}
static inline long long __double_as_longlong(double d) {
    long long u;
    memcpy(&u, &d, 8);
    return u;
}
static inline float __fmul_rn(float a, float b) { return a * b; }
static inline float __fadd_rn(float a, float b) { return a + b; }
static inline float __fsub_rn(float a, float b) { return a - b; }
static inline float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }
// __expf and __logf are glibc functions already (the same values as expf and logf).
static inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
static inline double rsqrt(double x) { return 1.0 / sqrt(x); }
static inline float __fdividef(float a, float b) { return a / b; }
static inline int __popc(unsigned int x) { return __builtin_popcount(x); }
static inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz((unsigned int) x); }
static inline int __ffs(int x) { return __builtin_ffs(x); }
[[noreturn]] static inline void __trap() { emu::fail("__trap()"); }

static inline int min(int a, int b) { return a < b ? a : b; }
static inline int max(int a, int b) { return a > b ? a : b; }
static inline unsigned int min(unsigned int a, unsigned int b) { return a < b ? a : b; }
static inline unsigned int max(unsigned int a, unsigned int b) { return a > b ? a : b; }
static inline long long min(long long a, long long b) { return a < b ? a : b; }
static inline long long max(long long a, long long b) { return a > b ? a : b; }

static inline float atomicAdd(float* p, float v) {
    float old = *p;
    *p = old + v;
    return old;
}
static inline double atomicAdd(double* p, double v) {
    double old = *p;
    *p = old + v;
    return old;
}
static inline int atomicAdd(int* p, int v) {
    int old = *p;
    *p = old + v;
    return old;
}
static inline unsigned int atomicAdd(unsigned int* p, unsigned int v) {
    unsigned int old = *p;
    *p = old + v;
    return old;
}
static inline unsigned long long atomicAdd(unsigned long long* p, unsigned long long v) {
    unsigned long long old = *p;
    *p = old + v;
    return old;
}
static inline int atomicMax(int* p, int v) {
    int old = *p;
    if (v > old) *p = v;
    return old;
}

// f16 conversions with round-to-nearest-even (GCC's _Float16 on x86-64 converts in software or F16C).
static inline float emu_f16_to_f32(unsigned short h) {
    _Float16 x;
    memcpy(&x, &h, 2);
    return (float) x;
}
static inline unsigned short emu_f32_to_f16(float f) {
    _Float16 x = (_Float16) f;
    unsigned short h;
    memcpy(&h, &x, 2);
    return h;
}

// mma.sync.m16n8k16.row.col.f32.bf16.bf16.f32, d += A * B, reconstructed from every lane's fragments by the
// layout the PTX ISA documents (see wh_mma_bf16_16816). Products of bf16 values are exact in fp32.
static inline void emu_mma_bf16_16816(float* d, const unsigned int* a, const unsigned int* b) {
    const int t = emu::linearThread();
    const int warp = t / 32, lane = t % 32;
    unsigned int* A = &emu::g_launch->mmaA[(size_t) warp * 128];
    unsigned int* B = &emu::g_launch->mmaB[(size_t) warp * 64];
    for (int r = 0; r < 4; r++) A[lane * 4 + r] = a[r];
    for (int r = 0; r < 2; r++) B[lane * 2 + r] = b[r];
    emu::warpBarrier();
    float Am[16][16], Bm[16][8];
    for (int L = 0; L < 32; L++) {
        int g = L >> 2, tg = L & 3;
        const unsigned int* la = &A[L * 4];
        const unsigned int* lb = &B[L * 2];
        Am[g][2 * tg] = emu::bf16(la[0]);
        Am[g][2 * tg + 1] = emu::bf16(la[0] >> 16);
        Am[g + 8][2 * tg] = emu::bf16(la[1]);
        Am[g + 8][2 * tg + 1] = emu::bf16(la[1] >> 16);
        Am[g][2 * tg + 8] = emu::bf16(la[2]);
        Am[g][2 * tg + 9] = emu::bf16(la[2] >> 16);
        Am[g + 8][2 * tg + 8] = emu::bf16(la[3]);
        Am[g + 8][2 * tg + 9] = emu::bf16(la[3] >> 16);
        Bm[2 * tg][g] = emu::bf16(lb[0]);
        Bm[2 * tg + 1][g] = emu::bf16(lb[0] >> 16);
        Bm[2 * tg + 8][g] = emu::bf16(lb[1]);
        Bm[2 * tg + 9][g] = emu::bf16(lb[1] >> 16);
    }
    const int g = lane >> 2, tg = lane & 3;
    for (int r = 0; r < 4; r++) {
        int row = g + 8 * (r >> 1);
        int col = 2 * tg + (r & 1);
        float s = d[r];
        for (int k = 0; k < 16; k++) {
            s += Am[row][k] * Bm[k][col];
        }
        d[r] = s;
    }
    emu::warpBarrier();  // the fragment slots are reused by the next mma
}

struct EmuKernelEntry {
    const char* name;
    void (*trampoline)(void**);
};

// Defines the module's launch entry point over its generated kernel table.
#define EMU_DEFINE_LAUNCH(TABLE)                                                                                         \
    extern "C" int whittle_emu_launch(const char* name, unsigned int gx, unsigned int gy, unsigned int gz, unsigned int bx, \
                                      unsigned int by, unsigned int bz, unsigned int smem, void** params, char* error,      \
                                      int errorLen) {                                                                    \
        for (const EmuKernelEntry& e : TABLE) {                                                                          \
            if (strcmp(e.name, name) == 0) {                                                                             \
                std::string r = emu::launch(e.trampoline, dim3(gx, gy, gz), dim3(bx, by, bz), smem, params);              \
                if (!r.empty()) {                                                                                        \
                    snprintf(error, (size_t) errorLen, "%s: %s", name, r.c_str());                                      \
                    return 1;                                                                                            \
                }                                                                                                        \
                return 0;                                                                                                \
            }                                                                                                            \
        }                                                                                                                \
        snprintf(error, (size_t) errorLen, "no kernel named %s in this module", name);                                  \
        return 2;                                                                                                        \
    }                                                                                                                    \
    extern "C" int whittle_emu_has_kernel(const char* name) {                                                            \
        for (const EmuKernelEntry& e : TABLE) {                                                                          \
            if (strcmp(e.name, name) == 0) return 1;                                                                     \
        }                                                                                                                \
        return 0;                                                                                                        \
    }
