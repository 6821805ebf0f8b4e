// Element-wise and row-wise operations of the decoder forward: residual add, SwiGLU, per-row scaling, bias,
// row gather / weighted scatter-add (MoE token permutation and combine), rotary embedding, and a plain copy
// that measures the device's achievable bandwidth; of the CLIP vision tower: exact GELU, quick_gelu, and a
// strided 2-D block copy. All fp32. Outputs may alias inputs where the Java side
// allows it, so pointers that may alias carry no __restrict__.
//
// Products and sums that the CPU reference computes as separately rounded float operations use __fmul_rn /
// __fadd_rn here too (no FMA contraction), so results match the CPU backend bit for bit where the inputs do.
#include "whittle_common.cuh"

// out = a + b. The x4 variant needs n % 4 == 0 and 16-byte aligned pointers (checked on the Java side).
extern "C" __global__ void add_f32(const float* a, const float* b, float* out, long long n) {
    for (long long i = wh_global_thread(); i < n; i += wh_grid_stride()) {
        out[i] = a[i] + b[i];
    }
}

extern "C" __global__ void add_f32x4(const wh_f4* a, const wh_f4* b, wh_f4* out, long long n4) {
    for (long long i = wh_global_thread(); i < n4; i += wh_grid_stride()) {
        wh_f4 x = a[i];
        wh_f4 y = b[i];
        wh_f4 r;
        r.x = x.x + y.x;
        r.y = x.y + y.y;
        r.z = x.z + y.z;
        r.w = x.w + y.w;
        out[i] = r;
    }
}

// SiLU(g) * u with SiLU(g) = g / (1 + exp(-g)).
__device__ __forceinline__ float wh_silu_mul(float g, float u) {
    return __fmul_rn(g / (1.0f + expf(-g)), u);
}

extern "C" __global__ void silu_mul_f32(const float* gate, const float* up, float* out, long long n) {
    for (long long i = wh_global_thread(); i < n; i += wh_grid_stride()) {
        out[i] = wh_silu_mul(gate[i], up[i]);
    }
}

extern "C" __global__ void silu_mul_f32x4(const wh_f4* gate, const wh_f4* up, wh_f4* out, long long n4) {
    for (long long i = wh_global_thread(); i < n4; i += wh_grid_stride()) {
        wh_f4 g = gate[i];
        wh_f4 u = up[i];
        wh_f4 r;
        r.x = wh_silu_mul(g.x, u.x);
        r.y = wh_silu_mul(g.y, u.y);
        r.z = wh_silu_mul(g.z, u.z);
        r.w = wh_silu_mul(g.w, u.w);
        out[i] = r;
    }
}

// Device-to-device copy through the SMs, 16 bytes per thread and step: the bandwidth ceiling that memory-bound
// kernels are measured against (alongside cuMemcpyDtoD).
extern "C" __global__ void copy_f32x4(const wh_f4* __restrict__ in, wh_f4* __restrict__ out, long long n4) {
    for (long long i = wh_global_thread(); i < n4; i += wh_grid_stride()) {
        out[i] = in[i];
    }
}

// x[r, :] *= scale[r]. Grid-stride over rows, block threads over columns.
extern "C" __global__ void scale_rows_f32(float* x, const float* __restrict__ scale, long long rows, int cols) {
    for (long long r = blockIdx.x; r < rows; r += gridDim.x) {
        float s = scale[r];
        float* row = x + r * cols;
        for (int c = threadIdx.x; c < cols; c += blockDim.x) {
            row[c] = __fmul_rn(row[c], s);
        }
    }
}

// y[r, :] += bias[:] (a Linear layer's bias).
extern "C" __global__ void add_bias_rows_f32(float* y, const float* __restrict__ bias, long long rows, int cols) {
    for (long long r = blockIdx.x; r < rows; r += gridDim.x) {
        float* row = y + r * cols;
        for (int c = threadIdx.x; c < cols; c += blockDim.x) {
            row[c] = row[c] + bias[c];
        }
    }
}

// dst[i, :] = src[rows[i], :].
extern "C" __global__ void gather_rows_f32(const float* __restrict__ src, const int* __restrict__ rows, int count, int cols,
                                           float* __restrict__ dst) {
    for (long long i = blockIdx.x; i < count; i += gridDim.x) {
        const float* s = src + (long long) rows[i] * cols;
        float* d = dst + i * cols;
        for (int c = threadIdx.x; c < cols; c += blockDim.x) {
            d[c] = s[c];
        }
    }
}

// gather on 16-byte vectors (cols4 = cols / 4; cols % 4 == 0 and aligned pointers, checked on the Java side)
extern "C" __global__ void gather_rows_f32x4(const wh_f4* __restrict__ src, const int* __restrict__ rows, int count, int cols4,
                                             wh_f4* __restrict__ dst) {
    for (long long i = blockIdx.x; i < count; i += gridDim.x) {
        const wh_f4* s = src + (long long) rows[i] * cols4;
        wh_f4* d = dst + i * cols4;
        for (int c = threadIdx.x; c < cols4; c += blockDim.x) {
            d[c] = s[c];
        }
    }
}

// dst[rows[i], :] += w[i] * src[i, :] (w null: 1), rows distinct (the Java side checks), so rows run in parallel.
extern "C" __global__ void scatter_add_rows_f32(const float* __restrict__ src, const int* __restrict__ rows,
                                                const float* __restrict__ weights, int count, int cols, float* dst) {
    for (long long i = blockIdx.x; i < count; i += gridDim.x) {
        const float* s = src + i * cols;
        float* d = dst + (long long) rows[i] * cols;
        float w = weights ? weights[i] : 1.0f;
        for (int c = threadIdx.x; c < cols; c += blockDim.x) {
            d[c] = __fadd_rn(d[c], __fmul_rn(w, s[c]));
        }
    }
}

// scatter-add on 16-byte vectors (cols4 = cols / 4; alignment as for gather_rows_f32x4), rows distinct
extern "C" __global__ void scatter_add_rows_f32x4(const wh_f4* __restrict__ src, const int* __restrict__ rows,
                                                  const float* __restrict__ weights, int count, int cols4, wh_f4* dst) {
    for (long long i = blockIdx.x; i < count; i += gridDim.x) {
        const wh_f4* s = src + i * cols4;
        wh_f4* d = dst + (long long) rows[i] * cols4;
        float w = weights ? weights[i] : 1.0f;
        for (int c = threadIdx.x; c < cols4; c += blockDim.x) {
            wh_f4 a = s[c];
            wh_f4 b = d[c];
            b.x = __fadd_rn(b.x, __fmul_rn(w, a.x));
            b.y = __fadd_rn(b.y, __fmul_rn(w, a.y));
            b.z = __fadd_rn(b.z, __fmul_rn(w, a.z));
            b.w = __fadd_rn(b.w, __fmul_rn(w, a.w));
            d[c] = b;
        }
    }
}

// The same when rows repeat: one thread per column walks i in order, so repeated rows add in index order,
// exactly as the CPU backend does. Launch with enough threads to cover cols.
extern "C" __global__ void scatter_add_rows_ordered_f32(const float* __restrict__ src, const int* __restrict__ rows,
                                                        const float* __restrict__ weights, int count, int cols, float* dst) {
    long long c = wh_global_thread();
    if (c >= cols) {
        return;
    }
    for (int i = 0; i < count; i++) {
        float w = weights ? weights[i] : 1.0f;
        float* d = dst + (long long) rows[i] * cols + c;
        *d = __fadd_rn(*d, __fmul_rn(w, src[(long long) i * cols + c]));
    }
}

// Rotary embedding in place, rotate_half convention: channel i of a head pairs with channel i + half.
// x is [tokens, heads * 2 * half]; token t uses row posRow[t] of the cos/sin tables [rows, half], which the
// Java side computes exactly as the CPU backend does (fp32 inverse frequencies, fp32 angle, fp64 cos/sin).
// Grid-stride over tokens (blocks), threads over the token's heads * half pairs: 32-bit index arithmetic only
// (64-bit division per element would make this memory-bound kernel compute-bound).
extern "C" __global__ void rotary_f32(float* x, const int* __restrict__ posRow, const float* __restrict__ cosTable,
                                      const float* __restrict__ sinTable, long long tokens, int heads, int half) {
    const int perToken = heads * half;
    for (long long t = blockIdx.x; t < tokens; t += gridDim.x) {
        float* row = x + t * (2LL * perToken);
        const float* cosRow = cosTable + (long long) posRow[t] * half;
        const float* sinRow = sinTable + (long long) posRow[t] * half;
        for (int k = threadIdx.x; k < perToken; k += blockDim.x) {
            int h = k / half;
            int i = k - h * half;
            float* base = row + 2 * h * half;
            float c = cosRow[i];
            float s = sinRow[i];
            float x1 = base[i];
            float x2 = base[i + half];
            base[i] = __fsub_rn(__fmul_rn(x1, c), __fmul_rn(x2, s));
            base[i + half] = __fadd_rn(__fmul_rn(x2, c), __fmul_rn(x1, s));
        }
    }
}

// Exact GELU, 0.5 x (1 + erf(x / sqrt 2)), in fp64 as the CPU backend (the CUDA math library's erf, which nvcc and
// NVRTC provide without headers; max error 2 ulp in fp64, far below the fp32 result's rounding).
__device__ __forceinline__ float wh_gelu(float a) {
    const double x = a;
    return (float) (0.5 * x * (1.0 + erf(x * (1.0 / sqrt(2.0)))));
}

// CLIP's quick_gelu, x * sigmoid(1.702 x) = x / (1 + exp(-1.702 x)), in fp64 as the CPU backend.
__device__ __forceinline__ float wh_quick_gelu(float a) {
    const double x = a;
    return (float) (x / (1.0 + exp(-1.702 * x)));
}

// out = gelu(x) / quick_gelu(x), element-wise; out may alias x. The x4 variants need n % 4 == 0 and 16-byte aligned
// pointers (checked on the Java side).
#define WH_UNARY_ENTRIES(NAME, FN)                                                              \
    extern "C" __global__ void NAME##_f32(const float* x, float* out, long long n) {             \
        for (long long i = wh_global_thread(); i < n; i += wh_grid_stride()) {                  \
            out[i] = FN(x[i]);                                                                   \
        }                                                                                        \
    }                                                                                            \
    extern "C" __global__ void NAME##_f32x4(const wh_f4* x, wh_f4* out, long long n4) {          \
        for (long long i = wh_global_thread(); i < n4; i += wh_grid_stride()) {                  \
            wh_f4 a = x[i];                                                                      \
            wh_f4 r;                                                                             \
            r.x = FN(a.x);                                                                       \
            r.y = FN(a.y);                                                                       \
            r.z = FN(a.z);                                                                       \
            r.w = FN(a.w);                                                                       \
            out[i] = r;                                                                          \
        }                                                                                        \
    }

WH_UNARY_ENTRIES(gelu, wh_gelu)
WH_UNARY_ENTRIES(quick_gelu, wh_quick_gelu)

// dst[r * dstLd + c] = src[r * srcLd + c] for r < rows, c < cols: a block between matrices of different widths
// (the Java side passes the block's first element of each and checks bounds and that the blocks do not overlap).
// Grid-stride over rows (blocks), threads over columns.
extern "C" __global__ void copy_block_f32(const float* __restrict__ src, long long srcLd, float* __restrict__ dst,
                                          long long dstLd, int rows, int cols) {
    for (long long r = blockIdx.x; r < rows; r += gridDim.x) {
        const float* s = src + r * srcLd;
        float* d = dst + r * dstLd;
        for (int c = threadIdx.x; c < cols; c += blockDim.x) {
            d[c] = s[c];
        }
    }
}
