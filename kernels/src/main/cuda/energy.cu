// CAMERA micro-expert energy of one SwiGLU expert, fused: for routed rows x_t (x [n, d]) and channels j of
// wGate, wUp [f, d], phi_j(t) = A_t * silu(wGate_j . x_t) * (wUp_j . x_t), and per channel the sum and the
// maximum of phi_j(t)^2 over the rows. The [n x f] gate and up activations never reach memory: each block keeps a
// [128 rows x 64 channels] tile of both products in registers, turns it into phi^2 in its epilogue and folds it
// into per-thread fp64 partials; only [parts x f] partial sums and maxima are written, then reduced in a fixed
// order by micro_expert_energy_reduce. Results are deterministic for a given (n, f, parts): every addition has a
// fixed place in the order, whatever the scheduling. (The order differs from the CPU backend's row order, so the
// two agree to fp64 rounding of the sums, on top of the fp32 rounding of the products.)
//
// Products are exact fp32 on the CUDA cores (fp32 accumulation, as the CPU backend's sgemm); the epilogue is fp64,
// in the CPU backend's evaluation order: phi = (A * (g / (1 + exp(-g)))) * u. A row with A == 0 adds nothing
// (skipped, as on the CPU, so non-finite products of unrouted rows do not leak in).
//
// Not yet run on a real GPU: checked by nvcc (sm_80, sm_90) and on the CPU emulator of the driver only.
#include "whittle_common.cuh"

#define WH_E_BM 128  // routed rows per tile
#define WH_E_BN 64   // channels per block
#define WH_E_BK 8
#define WH_E_PAD 4  // keeps shared rows 16-byte aligned for the vector loads

// Grid (ceil(f / 64), parts), block 256. Block (cx, p) covers channels [64 cx, 64 cx + 64) and the row tiles
// p, p + parts, p + 2 parts, ... in that order; it writes partSum[p * f + c] and partMax[p * f + c] for its
// channels c < f (every one, so the reduction reads no uninitialised memory).
extern "C" __global__ void __launch_bounds__(256) micro_expert_energy_f32(const float* __restrict__ x,
                                                                         const float* __restrict__ wGate,
                                                                         const float* __restrict__ wUp,
                                                                         const float* __restrict__ routingWeight, int n, int d,
                                                                         int f, double* __restrict__ partSum,
                                                                         double* __restrict__ partMax) {
    __shared__ __align__(16) float Xs[WH_E_BK][WH_E_BM + WH_E_PAD];
    __shared__ __align__(16) float Gs[WH_E_BK][WH_E_BN + WH_E_PAD];
    __shared__ __align__(16) float Us[WH_E_BK][WH_E_BN + WH_E_PAD];
    __shared__ double redSum[16][WH_E_BN];
    __shared__ double redMax[16][WH_E_BN];
    const int tid = threadIdx.x;
    const int tx = tid & 15;  // channels tx*4 .. +3
    const int ty = tid >> 4;  // rows ty*4 .. +3 and 64 + ty*4 .. +3 of each tile
    const long long c0 = (long long) blockIdx.x * WH_E_BN;
    const int rowTiles = (n + WH_E_BM - 1) / WH_E_BM;

    double sum[4];
    double mx[4];
#pragma unroll
    for (int j = 0; j < 4; j++) {
        sum[j] = 0.0;
        mx[j] = 0.0;  // phi^2 >= 0, and the caller's maxima start at 0 too
    }

    for (int rt = blockIdx.y; rt < rowTiles; rt += gridDim.y) {
        const long long r0 = (long long) rt * WH_E_BM;
        float accG[8][4];
        float accU[8][4];
#pragma unroll
        for (int i = 0; i < 8; i++) {
#pragma unroll
            for (int j = 0; j < 4; j++) {
                accG[i][j] = 0.0f;
                accU[i][j] = 0.0f;
            }
        }
        for (int k0 = 0; k0 < d; k0 += WH_E_BK) {
            // x[r0 + mm][k0 + kk] into Xs[kk][mm]: consecutive threads read consecutive k of a row
#pragma unroll
            for (int s = 0; s < (WH_E_BM * WH_E_BK) / 256; s++) {
                int e = tid + 256 * s;
                int mm = e / WH_E_BK;
                int kk = e % WH_E_BK;
                long long gm = r0 + mm;
                int gk = k0 + kk;
                Xs[kk][mm] = (gm < n && gk < d) ? x[gm * d + gk] : 0.0f;
            }
            // wGate / wUp rows c0 + nn into Gs[kk][nn], Us[kk][nn]
#pragma unroll
            for (int s = 0; s < (WH_E_BN * WH_E_BK) / 256; s++) {
                int e = tid + 256 * s;
                int nn = e / WH_E_BK;
                int kk = e % WH_E_BK;
                long long gn = c0 + nn;
                int gk = k0 + kk;
                bool in = gn < f && gk < d;
                Gs[kk][nn] = in ? wGate[gn * d + gk] : 0.0f;
                Us[kk][nn] = in ? wUp[gn * d + gk] : 0.0f;
            }
            __syncthreads();
#pragma unroll
            for (int kk = 0; kk < WH_E_BK; kk++) {
                wh_f4 a0 = *reinterpret_cast<const wh_f4*>(&Xs[kk][ty * 4]);
                wh_f4 a1 = *reinterpret_cast<const wh_f4*>(&Xs[kk][64 + ty * 4]);
                wh_f4 g4 = *reinterpret_cast<const wh_f4*>(&Gs[kk][tx * 4]);
                wh_f4 u4 = *reinterpret_cast<const wh_f4*>(&Us[kk][tx * 4]);
                float a[8] = {a0.x, a0.y, a0.z, a0.w, a1.x, a1.y, a1.z, a1.w};
                float g[4] = {g4.x, g4.y, g4.z, g4.w};
                float u[4] = {u4.x, u4.y, u4.z, u4.w};
#pragma unroll
                for (int i = 0; i < 8; i++) {
#pragma unroll
                    for (int j = 0; j < 4; j++) {
                        accG[i][j] += a[i] * g[j];
                        accU[i][j] += a[i] * u[j];
                    }
                }
            }
            __syncthreads();
        }
        // epilogue: phi^2 of this thread's 8 rows x 4 channels into its fp64 partials, rows in ascending order
#pragma unroll
        for (int i = 0; i < 8; i++) {
            long long row = r0 + (i < 4 ? ty * 4 + i : 64 + ty * 4 + (i - 4));
            double a = row < n ? (double) routingWeight[row] : 0.0;
            if (a == 0.0) {
                continue;
            }
#pragma unroll
            for (int j = 0; j < 4; j++) {
                double gd = accG[i][j];
                double phi = a * (gd / (1.0 + exp(-gd))) * (double) accU[i][j];
                double sq = phi * phi;
                sum[j] += sq;
                mx[j] = sq > mx[j] ? sq : mx[j];
            }
        }
    }

    // across the 16 row groups of the block, in row-group order
#pragma unroll
    for (int j = 0; j < 4; j++) {
        redSum[ty][tx * 4 + j] = sum[j];
        redMax[ty][tx * 4 + j] = mx[j];
    }
    __syncthreads();
    if (tid < WH_E_BN && c0 + tid < f) {
        double s = 0.0;
        double m = 0.0;
        for (int r = 0; r < 16; r++) {
            s += redSum[r][tid];
            m = redMax[r][tid] > m ? redMax[r][tid] : m;
        }
        partSum[(long long) blockIdx.y * f + c0 + tid] = s;
        partMax[(long long) blockIdx.y * f + c0 + tid] = m;
    }
}

// out[c] = sum over p of partSum[p * f + c] (p ascending), out[f + c] = max over p of partMax[p * f + c].
// One thread per channel.
extern "C" __global__ void micro_expert_energy_reduce(const double* __restrict__ partSum, const double* __restrict__ partMax,
                                                      int parts, int f, double* __restrict__ out) {
    const long long c = wh_global_thread();
    if (c >= f) {
        return;
    }
    double s = 0.0;
    double m = 0.0;
    for (int p = 0; p < parts; p++) {
        s += partSum[(long long) p * f + c];
        double v = partMax[(long long) p * f + c];
        m = v > m ? v : m;
    }
    out[c] = s;
    out[f + c] = m;
}
