// Dtype conversions between the storage formats of Hugging Face checkpoints (bf16, f16) and the fp32 compute
// format, plus the fp32 -> bf16 conversion that prepares GEMM operands (optionally transposed, zero-padded).
#include "whittle_common.cuh"

extern "C" __global__ void bf16_to_f32(const wh_bf16* __restrict__ in, float* __restrict__ out, long long n) {
    for (long long i = wh_global_thread(); i < n; i += wh_grid_stride()) {
        out[i] = wh_bf16_to_f32(in[i]);
    }
}

extern "C" __global__ void f32_to_bf16(const float* __restrict__ in, wh_bf16* __restrict__ out, long long n) {
    for (long long i = wh_global_thread(); i < n; i += wh_grid_stride()) {
        out[i] = wh_f32_to_bf16(in[i]);
    }
}

extern "C" __global__ void f16_to_f32(const wh_f16* __restrict__ in, float* __restrict__ out, long long n) {
    for (long long i = wh_global_thread(); i < n; i += wh_grid_stride()) {
        out[i] = wh_f16_to_f32(in[i]);
    }
}

extern "C" __global__ void f32_to_f16(const float* __restrict__ in, wh_f16* __restrict__ out, long long n) {
    for (long long i = wh_global_thread(); i < n; i += wh_grid_stride()) {
        out[i] = wh_f32_to_f16(in[i]);
    }
}

// GEMM operand preparation. The source is an fp32 matrix [srcRows x srcCols] with row stride srcLd; the output
// is that matrix (transpose = 0) or its transpose (transpose = 1) in bf16, [outRows x dstLd] with outCols real
// columns and the padding columns outCols..dstLd-1 set to zero, so the GEMM never needs a K bound.
// Launch: block (32, 8), grid (ceil(dstLd / 32), ceil(outRows / 32)). A 32x32 shared tile keeps both the reads
// and the writes coalesced when transposing.
extern "C" __global__ void __launch_bounds__(256) f32_to_bf16_2d(const float* __restrict__ src, long long srcLd, int srcRows,
                                                                 int srcCols, int transpose, wh_bf16* __restrict__ dst,
                                                                 long long dstLd) {
    __shared__ float tile[32][33];
    const long long outRows = transpose ? srcCols : srcRows;
    const long long r0 = (long long) blockIdx.y * 32;
    const long long c0 = (long long) blockIdx.x * 32;
    const int tx = threadIdx.x;
    for (int i = threadIdx.y; i < 32; i += blockDim.y) {
        if (transpose) {
            // out[r][c] = src[c][r]: read source row c0 + i along r (coalesced), keep it as tile column i
            long long sr = c0 + i;
            long long sc = r0 + tx;
            tile[tx][i] = (sr < srcRows && sc < srcCols) ? src[sr * srcLd + sc] : 0.0f;
        } else {
            long long r = r0 + i;
            long long c = c0 + tx;
            tile[i][tx] = (r < srcRows && c < srcCols) ? src[r * srcLd + c] : 0.0f;
        }
    }
    __syncthreads();
    for (int i = threadIdx.y; i < 32; i += blockDim.y) {
        long long r = r0 + i;
        long long c = c0 + tx;
        if (r < outRows && c < dstLd) {
            dst[r * dstLd + c] = wh_f32_to_bf16(tile[i][tx]);
        }
    }
}
