// Our own matrix multiply, used where cuBLAS (libcublas.so.12) does not load. Row-major throughout:
//   C[M, N] = alpha * op(A) * op(B) + beta * C     (beta == 0: C is not read, so it may hold garbage)
//
// gemm_f32_{nn,nt,tn,tt}: exact fp32 on the CUDA cores (the default precision of the CUDA backend, so results
//   match the CPU backend to fp32 rounding). 128x128x8 block tiles, 256 threads, 8x8 outputs per thread.
// gemm_bf16_tn: bf16 inputs, fp32 accumulation on tensor cores (mma.sync m16n8k16, sm_80+). A is [M, Kp] and B
//   is [N, Kp] (the layout of x and of a Linear weight), both with K zero-padded to a multiple of 32 and row
//   strides that are multiples of 8 elements (16-byte rows for 128-bit loads); convert.cu's f32_to_bf16_2d
//   produces exactly that, transposing where op() asks. 128x128x32 block tiles, 8 warps of 64x32, register-
//   staged double buffering (one barrier per k-step).
#include "whittle_common.cuh"

#define WH_G_BM 128
#define WH_G_BN 128
#define WH_G_BK 8
#define WH_G_PAD 4  // keeps 16-byte alignment of shared rows and spreads the transposed stores over banks

template <bool TA, bool TB>
__device__ __forceinline__ void wh_gemm_f32(int M, int N, int K, float alpha, const float* __restrict__ A, long long lda,
                                            const float* __restrict__ B, long long ldb, float beta, float* __restrict__ C,
                                            long long ldc) {
    __shared__ __align__(16) float As[WH_G_BK][WH_G_BM + WH_G_PAD];
    __shared__ __align__(16) float Bs[WH_G_BK][WH_G_BN + WH_G_PAD];
    const int tid = threadIdx.x;
    const int tx = tid & 15;  // columns tx*4 .. +3 and 64 + tx*4 .. +3
    const int ty = tid >> 4;  // rows    ty*4 .. +3 and 64 + ty*4 .. +3
    const long long bm = (long long) blockIdx.y * WH_G_BM;
    const long long bn = (long long) blockIdx.x * WH_G_BN;

    float acc[8][8];
#pragma unroll
    for (int i = 0; i < 8; i++) {
#pragma unroll
        for (int j = 0; j < 8; j++) {
            acc[i][j] = 0.0f;
        }
    }

    for (int k0 = 0; k0 < K; k0 += WH_G_BK) {
        // op(A)[m][k] into As[k][m]; the faster index follows A's contiguous dimension so loads coalesce
#pragma unroll
        for (int s = 0; s < (WH_G_BM * WH_G_BK) / 256; s++) {
            int e = tid + 256 * s;
            int mm = TA ? (e % WH_G_BM) : (e / WH_G_BK);
            int kk = TA ? (e / WH_G_BM) : (e % WH_G_BK);
            long long gm = bm + mm;
            int gk = k0 + kk;
            float val = 0.0f;
            if (gm < M && gk < K) {
                val = TA ? A[(long long) gk * lda + gm] : A[gm * lda + gk];
            }
            As[kk][mm] = val;
        }
        // op(B)[k][n] into Bs[k][n]
#pragma unroll
        for (int s = 0; s < (WH_G_BN * WH_G_BK) / 256; s++) {
            int e = tid + 256 * s;
            int nn = TB ? (e / WH_G_BK) : (e % WH_G_BN);
            int kk = TB ? (e % WH_G_BK) : (e / WH_G_BN);
            long long gn = bn + nn;
            int gk = k0 + kk;
            float val = 0.0f;
            if (gn < N && gk < K) {
                val = TB ? B[gn * ldb + gk] : B[(long long) gk * ldb + gn];
            }
            Bs[kk][nn] = val;
        }
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < WH_G_BK; kk++) {
            wh_f4 a0 = *reinterpret_cast<const wh_f4*>(&As[kk][ty * 4]);
            wh_f4 a1 = *reinterpret_cast<const wh_f4*>(&As[kk][64 + ty * 4]);
            wh_f4 b0 = *reinterpret_cast<const wh_f4*>(&Bs[kk][tx * 4]);
            wh_f4 b1 = *reinterpret_cast<const wh_f4*>(&Bs[kk][64 + tx * 4]);
            float a[8] = {a0.x, a0.y, a0.z, a0.w, a1.x, a1.y, a1.z, a1.w};
            float b[8] = {b0.x, b0.y, b0.z, b0.w, b1.x, b1.y, b1.z, b1.w};
#pragma unroll
            for (int i = 0; i < 8; i++) {
#pragma unroll
                for (int j = 0; j < 8; j++) {
                    acc[i][j] += a[i] * b[j];
                }
            }
        }
        __syncthreads();
    }

#pragma unroll
    for (int i = 0; i < 8; i++) {
        long long m = bm + (i < 4 ? ty * 4 + i : 64 + ty * 4 + (i - 4));
        if (m >= M) {
            continue;
        }
#pragma unroll
        for (int j = 0; j < 8; j++) {
            long long n = bn + (j < 4 ? tx * 4 + j : 64 + tx * 4 + (j - 4));
            if (n < N) {
                float r = alpha * acc[i][j];
                if (beta != 0.0f) {
                    r += beta * C[m * ldc + n];
                }
                C[m * ldc + n] = r;
            }
        }
    }
}

#define WH_GEMM_F32_ENTRY(NAME, TA, TB)                                                                              \
    extern "C" __global__ void __launch_bounds__(256)                                                                \
        NAME(int M, int N, int K, float alpha, const float* __restrict__ A, long long lda, const float* __restrict__ B, \
             long long ldb, float beta, float* __restrict__ C, long long ldc) {                                        \
        wh_gemm_f32<TA, TB>(M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);                                           \
    }

WH_GEMM_F32_ENTRY(gemm_f32_nn, false, false)
WH_GEMM_F32_ENTRY(gemm_f32_nt, false, true)
WH_GEMM_F32_ENTRY(gemm_f32_tn, true, false)
WH_GEMM_F32_ENTRY(gemm_f32_tt, true, true)

#define WH_M_BM 128
#define WH_M_BN 128
#define WH_M_BK 32
#define WH_M_LDS 40  // bf16 per shared row: 32 + 8 padding, so fragment loads of 8 rows hit 32 distinct banks

// C[M, N] = alpha * A[M, Kp] * B[N, Kp]^T + beta * C, bf16 inputs, fp32 accumulation. Grid (ceil(N / 128),
// ceil(M / 128)), block 256.
extern "C" __global__ void __launch_bounds__(256) gemm_bf16_tn(int M, int N, int Kp, float alpha,
                                                               const wh_bf16* __restrict__ A, long long lda,
                                                               const wh_bf16* __restrict__ B, long long ldb, float beta,
                                                               float* __restrict__ C, long long ldc) {
    __shared__ __align__(16) wh_bf16 As[2][WH_M_BM * WH_M_LDS];
    __shared__ __align__(16) wh_bf16 Bs[2][WH_M_BN * WH_M_LDS];
    const int tid = threadIdx.x;
    const int lane = tid & 31;
    const int warp = tid >> 5;
    const int wm = warp >> 2;  // 2 warp rows of 64
    const int wn = warp & 3;   // 4 warp columns of 32
    const int g = lane >> 2;
    const int t = lane & 3;
    const long long bm = (long long) blockIdx.y * WH_M_BM;
    const long long bn = (long long) blockIdx.x * WH_M_BN;
    const int kTiles = Kp / WH_M_BK;

    float acc[4][4][4];
#pragma unroll
    for (int i = 0; i < 4; i++) {
#pragma unroll
        for (int j = 0; j < 4; j++) {
#pragma unroll
            for (int r = 0; r < 4; r++) {
                acc[i][j][r] = 0.0f;
            }
        }
    }

    // each thread moves two 16-byte chunks of A and two of B per k-tile: chunk c covers row c / 4, k (c % 4) * 8
    wh_u4 ra[2];
    wh_u4 rb[2];
    const wh_u4 zero = {0u, 0u, 0u, 0u};

#define WH_M_LOAD(KT)                                                                                         \
    _Pragma("unroll") for (int s = 0; s < 2; s++) {                                                          \
        int c = tid + 256 * s;                                                                                \
        int row = c >> 2;                                                                                     \
        int kc = (c & 3) * 8;                                                                                 \
        long long k = (long long) (KT) * WH_M_BK + kc;                                                        \
        ra[s] = (bm + row < M) ? *reinterpret_cast<const wh_u4*>(A + (bm + row) * lda + k) : zero;            \
        rb[s] = (bn + row < N) ? *reinterpret_cast<const wh_u4*>(B + (bn + row) * ldb + k) : zero;            \
    }
#define WH_M_STORE(BUF)                                                                                       \
    _Pragma("unroll") for (int s = 0; s < 2; s++) {                                                          \
        int c = tid + 256 * s;                                                                                \
        int row = c >> 2;                                                                                     \
        int kc = (c & 3) * 8;                                                                                 \
        *reinterpret_cast<wh_u4*>(&As[BUF][row * WH_M_LDS + kc]) = ra[s];                                     \
        *reinterpret_cast<wh_u4*>(&Bs[BUF][row * WH_M_LDS + kc]) = rb[s];                                     \
    }

    if (kTiles > 0) {
        WH_M_LOAD(0)
        WH_M_STORE(0)
    }
    __syncthreads();

    for (int kt = 0; kt < kTiles; kt++) {
        const int buf = kt & 1;
        if (kt + 1 < kTiles) {
            WH_M_LOAD(kt + 1)  // in flight while the tensor cores work on this tile
        }
        const wh_bf16* as = As[buf];
        const wh_bf16* bs = Bs[buf];
#pragma unroll
        for (int kk = 0; kk < WH_M_BK; kk += 16) {
            unsigned int af[4][4];
            unsigned int bf[4][2];
#pragma unroll
            for (int mt = 0; mt < 4; mt++) {
                const wh_bf16* p = as + (wm * 64 + mt * 16 + g) * WH_M_LDS + kk + 2 * t;
                af[mt][0] = *reinterpret_cast<const unsigned int*>(p);
                af[mt][1] = *reinterpret_cast<const unsigned int*>(p + 8 * WH_M_LDS);
                af[mt][2] = *reinterpret_cast<const unsigned int*>(p + 8);
                af[mt][3] = *reinterpret_cast<const unsigned int*>(p + 8 * WH_M_LDS + 8);
            }
#pragma unroll
            for (int nt = 0; nt < 4; nt++) {
                const wh_bf16* p = bs + (wn * 32 + nt * 8 + g) * WH_M_LDS + kk + 2 * t;
                bf[nt][0] = *reinterpret_cast<const unsigned int*>(p);
                bf[nt][1] = *reinterpret_cast<const unsigned int*>(p + 8);
            }
#pragma unroll
            for (int mt = 0; mt < 4; mt++) {
#pragma unroll
                for (int nt = 0; nt < 4; nt++) {
                    wh_mma_bf16_16816(acc[mt][nt], af[mt], bf[nt]);
                }
            }
        }
        if (kt + 1 < kTiles) {
            WH_M_STORE((kt + 1) & 1)
        }
        __syncthreads();
    }
#undef WH_M_LOAD
#undef WH_M_STORE

#pragma unroll
    for (int mt = 0; mt < 4; mt++) {
#pragma unroll
        for (int nt = 0; nt < 4; nt++) {
#pragma unroll
            for (int r = 0; r < 4; r++) {
                long long row = bm + wm * 64 + mt * 16 + g + 8 * (r >> 1);
                long long col = bn + wn * 32 + nt * 8 + 2 * t + (r & 1);
                if (row < M && col < N) {
                    float v = alpha * acc[mt][nt][r];
                    if (beta != 0.0f) {
                        v += beta * C[row * ldc + col];
                    }
                    C[row * ldc + col] = v;
                }
            }
        }
    }
}
