// Device helpers shared by every Whittle module.
//
// Header-free on purpose: CUDA runtime images carry no CUDA headers, so NVRTC must compile every module from
// this file and the module alone (the loader hands this header to NVRTC by name). bf16 and f16 values are raw
// 16-bit patterns, and vector types are our own aligned structs.
//
// Under WH_EMU the same sources compile as host C++ for the CPU emulator that the tests use (kernels/emu): the
// few things plain C++ cannot express (inline PTX, dynamic shared memory) go through the helpers below, which
// have an emulated twin. Kernels must therefore use these helpers rather than asm or `extern __shared__`.
#pragma once

#ifdef WH_EMU
#include "emu_runtime.h"
#endif

// NVRTC predefines the CUDA language macros; these fallbacks only matter if a toolchain does not.
#ifndef __align__
#define __align__(n) __attribute__((aligned(n)))
#endif
#ifndef __forceinline__
#define __forceinline__ __inline__ __attribute__((always_inline))
#endif

typedef unsigned short wh_bf16;
typedef unsigned short wh_f16;

// 16-byte vectors for 128-bit loads and stores (addresses must be 16-byte aligned).
struct __align__(16) wh_f4 {
    float x, y, z, w;
};
struct __align__(16) wh_u4 {
    unsigned int x, y, z, w;
};

#define WH_FULL_MASK 0xffffffffu

// The block's dynamic shared memory as an array of `type`.
#ifdef WH_EMU
#define WH_DYNAMIC_SMEM(type, name) type* name = reinterpret_cast<type*>(emu_dynamic_smem())
#else
#define WH_DYNAMIC_SMEM(type, name)                               \
    extern __shared__ __align__(16) unsigned char wh_dyn_smem_[]; \
    type* name = reinterpret_cast<type*>(wh_dyn_smem_)
#endif

// min/max of ints without relying on the math headers' overloads (not every NVRTC version declares them).
__device__ __forceinline__ int wh_min(int a, int b) {
    return a < b ? a : b;
}
__device__ __forceinline__ int wh_max(int a, int b) {
    return a > b ? a : b;
}

// ---- number formats --------------------------------------------------------------------------------------

// bf16 -> f32 is exact: the bf16 bits are the top half of the f32 bits.
__device__ __forceinline__ float wh_bf16_to_f32(wh_bf16 h) {
    return __uint_as_float(((unsigned int) h) << 16);
}

// f32 -> bf16 with round-to-nearest-even; NaN -> canonical quiet NaN 0x7FC0 (as PyTorch's c10::BFloat16).
__device__ __forceinline__ wh_bf16 wh_f32_to_bf16(float f) {
    if (f != f) {
        return (wh_bf16) 0x7FC0;
    }
    unsigned int x = __float_as_uint(f);
    x += 0x7FFFu + ((x >> 16) & 1u);
    return (wh_bf16) (x >> 16);
}

// f16 -> f32 (exact) through the hardware conversion instruction.
__device__ __forceinline__ float wh_f16_to_f32(wh_f16 h) {
#ifdef WH_EMU
    return emu_f16_to_f32(h);
#else
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
    return f;
#endif
}

// f32 -> f16, round-to-nearest-even (cvt.rn).
__device__ __forceinline__ wh_f16 wh_f32_to_f16(float f) {
#ifdef WH_EMU
    return emu_f32_to_f16(f);
#else
    unsigned short h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f));
    return h;
#endif
}

// Two bf16 in one 32-bit word: `lo` at the lower address (lower column), as mma fragments expect.
__device__ __forceinline__ unsigned int wh_pack_bf16x2(wh_bf16 lo, wh_bf16 hi) {
    return ((unsigned int) hi << 16) | (unsigned int) lo;
}

// ---- warp and block reductions ---------------------------------------------------------------------------
// Every lane of the warp must call these (full mask); the emulator checks that.

__device__ __forceinline__ float wh_warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) {
        v += __shfl_xor_sync(WH_FULL_MASK, v, o);
    }
    return v;
}

__device__ __forceinline__ double wh_warp_sum(double v) {
    for (int o = 16; o > 0; o >>= 1) {
        v += __shfl_xor_sync(WH_FULL_MASK, v, o);
    }
    return v;
}

__device__ __forceinline__ float wh_warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) {
        v = fmaxf(v, __shfl_xor_sync(WH_FULL_MASK, v, o));
    }
    return v;
}

// Sum over the whole block (blockDim.x a multiple of 32, at most 1024); every thread gets the result. The
// partial sums are added in warp order by every thread, so the result is deterministic. `scratch` is a
// __shared__ double[32]; the leading barrier makes back-to-back calls with the same scratch safe.
__device__ __forceinline__ double wh_block_sum(double v, double* scratch) {
    int lane = threadIdx.x & 31;
    int warp = threadIdx.x >> 5;
    int warps = blockDim.x >> 5;
    v = wh_warp_sum(v);
    __syncthreads();
    if (lane == 0) {
        scratch[warp] = v;
    }
    __syncthreads();
    double total = 0.0;
    for (int w = 0; w < warps; w++) {
        total += scratch[w];
    }
    return total;
}

__device__ __forceinline__ float wh_block_max(float v, float* scratch) {
    int lane = threadIdx.x & 31;
    int warp = threadIdx.x >> 5;
    int warps = blockDim.x >> 5;
    v = wh_warp_max(v);
    __syncthreads();
    if (lane == 0) {
        scratch[warp] = v;
    }
    __syncthreads();
    float m = scratch[0];
    for (int w = 1; w < warps; w++) {
        m = fmaxf(m, scratch[w]);
    }
    return m;
}

// ---- tensor cores ----------------------------------------------------------------------------------------

// d += A * B for one warp: A 16x16 bf16 (row-major fragment a[4]), B 16x8 bf16 (column-major fragment b[2]),
// d 16x8 fp32. Fragment layout (PTX ISA, mma.m16n8k16, g = lane / 4, t = lane % 4):
//   a[0] = A[g][2t..2t+1], a[1] = A[g+8][2t..2t+1], a[2] = A[g][2t+8..2t+9], a[3] = A[g+8][2t+8..2t+9]
//   b[0] = B[2t..2t+1][g], b[1] = B[2t+8..2t+9][g]
//   d[0] = D[g][2t], d[1] = D[g][2t+1], d[2] = D[g+8][2t], d[3] = D[g+8][2t+1]
// (the lower column / row of each pair in the low 16 bits). Needs sm_80; Java never launches it below.
__device__ __forceinline__ void wh_mma_bf16_16816(float* d, const unsigned int* a, const unsigned int* b) {
#if defined(WH_EMU)
    emu_mma_bf16_16816(d, a, b);
#elif __CUDA_ARCH__ >= 800
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#else
    __trap();
#endif
}

// Grid-stride loop bounds.
__device__ __forceinline__ long long wh_global_thread() {
    return (long long) blockIdx.x * blockDim.x + threadIdx.x;
}

__device__ __forceinline__ long long wh_grid_stride() {
    return (long long) gridDim.x * blockDim.x;
}
