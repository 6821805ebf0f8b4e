// Normalisation and norm statistics: RMSNorm (decoder forward), LayerNorm (CLIP vision tower), and sums of squares per row, per column and per
// contiguous segment (weight and activation norms that CAMERA and WGSEF score with). Statistics accumulate in
// fp64, as the CPU backend does, so the two agree to fp32 rounding of the result.
#include "whittle_common.cuh"

// y[r, :] = w * (x[r, :] / sqrt(mean(x[r, :]^2) + eps)), one warp per row (rows of any length; lanes stride the
// row so loads coalesce). y may alias x: each lane reads its elements before it writes them.
extern "C" __global__ void rms_norm_f32(const float* x, const float* __restrict__ w, float* y, long long rows, int n,
                                        double eps) {
    const int lane = threadIdx.x & 31;
    const long long warpsPerGrid = (long long) gridDim.x * (blockDim.x >> 5);
    for (long long r = (long long) blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5); r < rows; r += warpsPerGrid) {
        const float* xr = x + r * n;
        double ss = 0.0;
        for (int j = lane; j < n; j += 32) {
            double v = xr[j];
            ss += v * v;
        }
        ss = wh_warp_sum(ss);
        double inv = 1.0 / sqrt(ss / n + eps);
        float* yr = y + r * n;
        for (int j = lane; j < n; j += 32) {
            yr[j] = __fmul_rn(w[j], (float) (xr[j] * inv));
        }
    }
}

// The same on 16-byte vectors: n4 = n / 4, every row start 16-byte aligned (n % 4 == 0 and aligned pointers,
// checked on the Java side). A quarter of the load instructions of the scalar kernel.
extern "C" __global__ void rms_norm_f32x4(const wh_f4* x, const wh_f4* __restrict__ w, wh_f4* y, long long rows, int n4, double eps) {
    const int lane = threadIdx.x & 31;
    const long long warpsPerGrid = (long long) gridDim.x * (blockDim.x >> 5);
    for (long long r = (long long) blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5); r < rows; r += warpsPerGrid) {
        const wh_f4* xr = x + r * n4;
        double ss = 0.0;
        for (int j = lane; j < n4; j += 32) {
            wh_f4 v = xr[j];
            ss += (double) v.x * v.x + (double) v.y * v.y + (double) v.z * v.z + (double) v.w * v.w;
        }
        ss = wh_warp_sum(ss);
        double inv = 1.0 / sqrt(ss / (4.0 * n4) + eps);
        wh_f4* yr = y + r * n4;
        for (int j = lane; j < n4; j += 32) {
            wh_f4 v = xr[j];
            wh_f4 g = w[j];
            wh_f4 o;
            o.x = __fmul_rn(g.x, (float) (v.x * inv));
            o.y = __fmul_rn(g.y, (float) (v.y * inv));
            o.z = __fmul_rn(g.z, (float) (v.z * inv));
            o.w = __fmul_rn(g.w, (float) (v.w * inv));
            yr[j] = o;
        }
    }
}

// LayerNorm with the biased variance, as CpuBackend.layerNorm: mean and variance in fp64 (two passes over the row),
// y[r, j] = (float) ((x[r, j] - mean) / sqrt(var + eps) * w[j] (+ b[j])) evaluated in fp64. b may be null; y may
// alias x (each lane rewrites only the elements it reads last). One warp per row.
extern "C" __global__ void layer_norm_f32(const float* x, const float* __restrict__ w, const float* __restrict__ b, float* y,
                                          long long rows, int n, double eps) {
    const int lane = threadIdx.x & 31;
    const long long warpsPerGrid = (long long) gridDim.x * (blockDim.x >> 5);
    for (long long r = (long long) blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5); r < rows; r += warpsPerGrid) {
        const float* xr = x + r * n;
        double s = 0.0;
        for (int j = lane; j < n; j += 32) {
            s += (double) xr[j];
        }
        const double mean = wh_warp_sum(s) / n;
        double ss = 0.0;
        for (int j = lane; j < n; j += 32) {
            double c = (double) xr[j] - mean;
            ss += c * c;
        }
        const double inv = 1.0 / sqrt(wh_warp_sum(ss) / n + eps);
        float* yr = y + r * n;
        for (int j = lane; j < n; j += 32) {
            double z = ((double) xr[j] - mean) * inv * (double) w[j];
            yr[j] = (float) (b != nullptr ? z + (double) b[j] : z);
        }
    }
}

// out[r] = sum_c x[r, c]^2, one warp per row.
extern "C" __global__ void row_sumsq_f32(const float* __restrict__ x, long long rows, int cols, double* __restrict__ out) {
    const int lane = threadIdx.x & 31;
    const long long warpsPerGrid = (long long) gridDim.x * (blockDim.x >> 5);
    for (long long r = (long long) blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5); r < rows; r += warpsPerGrid) {
        const float* xr = x + r * cols;
        double ss = 0.0;
        for (int j = lane; j < cols; j += 32) {
            double v = xr[j];
            ss += v * v;
        }
        ss = wh_warp_sum(ss);
        if (lane == 0) {
            out[r] = ss;
        }
    }
}

// out[c] = sum_r x[r, c]^2. Block (32, 8): 32 columns, 8 row phases summed through shared memory in a fixed
// order (deterministic). Grid: ceil(cols / 32) blocks.
extern "C" __global__ void __launch_bounds__(256) col_sumsq_f32(const float* __restrict__ x, long long rows, int cols,
                                                                double* __restrict__ out) {
    __shared__ double partial[8][32];
    const long long c = (long long) blockIdx.x * 32 + threadIdx.x;
    double ss = 0.0;
    if (c < cols) {
        for (long long r = threadIdx.y; r < rows; r += 8) {
            double v = x[r * cols + c];
            ss += v * v;
        }
    }
    partial[threadIdx.y][threadIdx.x] = ss;
    __syncthreads();
    if (threadIdx.y == 0 && c < cols) {
        double total = 0.0;
        for (int p = 0; p < 8; p++) {
            total += partial[p][threadIdx.x];
        }
        out[c] = total;
    }
}

// out[s] = sum of x[i]^2 over i in [offsets[s], offsets[s + 1]): group norms of arbitrary contiguous groups
// (a weight group, an expert, a channel block). One block per segment, grid-stride over segments.
extern "C" __global__ void __launch_bounds__(256) segment_sumsq_f32(const float* __restrict__ x,
                                                                    const long long* __restrict__ offsets, int segments,
                                                                    double* __restrict__ out) {
    __shared__ double scratch[32];
    for (int s = blockIdx.x; s < segments; s += gridDim.x) {
        long long from = offsets[s];
        long long to = offsets[s + 1];
        double ss = 0.0;
        for (long long i = from + threadIdx.x; i < to; i += blockDim.x) {
            double v = x[i];
            ss += v * v;
        }
        double total = wh_block_sum(ss, scratch);
        if (threadIdx.x == 0) {
            out[s] = total;
        }
    }
}
