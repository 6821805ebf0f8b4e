// Causal grouped-query attention over packed sequences, flash-style: each block streams key/value tiles through
// shared memory with an online softmax, so the [length x length] score matrix is never stored. fp32 throughout
// (the CPU reference is fp32 scores with an fp64 softmax). When asked, the forward also writes each row's
// log-sum-exp so that a second kernel can recompute exact probabilities for one sequence at a time (for methods
// that score heads by where their attention goes) without the forward ever holding them.
//
// Layout: q, out [T, heads * headDim]; k, v [T, kvHeads * headDim]; sequence s covers rows
// [starts[s], starts[s] + lengths[s]) and attends only within itself. Query head h reads KV head
// h / (heads / kvHeads). Work items are (sequence, 32-query tile) pairs listed by the Java side in `tiles`.
#include "whittle_common.cuh"

#define WH_ATT_BQ 32
#define WH_ATT_BK 32
#define WH_ATT_THREADS 128  // 4 threads per query row

// Dynamic shared memory (floats): Q tile [BQ][headDim + 1], K tile [BK][headDim + 1], V tile [BK][headDim],
// P tile [BQ][BK + 1]. The Java side computes the same size.
template <int DMAX>
__device__ __forceinline__ void wh_attention_fwd(const float* __restrict__ q, const float* __restrict__ k,
                                                 const float* __restrict__ v, float* __restrict__ out,
                                                 float* __restrict__ lse, const int* __restrict__ tiles,
                                                 const int* __restrict__ starts, const int* __restrict__ lengths, int heads,
                                                 int kvHeads, int headDim, float scale) {
    WH_DYNAMIC_SMEM(float, smem);
    const float NEG_INF = -__int_as_float(0x7f800000);
    const int ld = headDim + 1;  // odd row stride: rows of Q and K fall in different banks
    float* Qs = smem;
    float* Ks = Qs + WH_ATT_BQ * ld;
    float* Vs = Ks + WH_ATT_BK * ld;
    float* Ps = Vs + WH_ATT_BK * headDim;

    const int seq = tiles[2 * blockIdx.x];
    const int q0 = tiles[2 * blockIdx.x + 1];
    const int h = blockIdx.y;
    const int kvh = h / (heads / kvHeads);
    const long long start = starts[seq];
    const int len = lengths[seq];
    const long long qStride = (long long) heads * headDim;
    const long long kvStride = (long long) kvHeads * headDim;
    const int tid = threadIdx.x;
    const int row = tid >> 2;
    const int t4 = tid & 3;

    for (int idx = tid; idx < WH_ATT_BQ * headDim; idx += WH_ATT_THREADS) {
        int r = idx / headDim;
        int d = idx - r * headDim;
        Qs[r * ld + d] = (q0 + r < len) ? q[(start + q0 + r) * qStride + (long long) h * headDim + d] : 0.0f;
    }

    const int qi = q0 + row;  // this thread's query, relative to the sequence start
    const int lastKey = wh_min(q0 + WH_ATT_BQ - 1, len - 1);
    float m = NEG_INF;
    float l = 0.0f;
    float acc[DMAX / 4];
#pragma unroll
    for (int r = 0; r < DMAX / 4; r++) {
        acc[r] = 0.0f;
    }

    for (int k0 = 0; k0 <= lastKey; k0 += WH_ATT_BK) {
        __syncthreads();  // the previous tile's K, V and P are no longer read
        for (int idx = tid; idx < WH_ATT_BK * headDim; idx += WH_ATT_THREADS) {
            int j = idx / headDim;
            int d = idx - j * headDim;
            int key = k0 + j;
            bool valid = key < len;
            long long off = (start + key) * kvStride + (long long) kvh * headDim + d;
            Ks[j * ld + d] = valid ? k[off] : 0.0f;
            Vs[j * headDim + d] = valid ? v[off] : 0.0f;
        }
        __syncthreads();

        // scores of this row for keys j = t4 + 4c
        float dot[8];
#pragma unroll
        for (int c = 0; c < 8; c++) {
            dot[c] = 0.0f;
        }
        const float* qrow = Qs + row * ld;
        for (int d = 0; d < headDim; d++) {
            float qv = qrow[d];
#pragma unroll
            for (int c = 0; c < 8; c++) {
                dot[c] += qv * Ks[(t4 + 4 * c) * ld + d];
            }
        }
        float tileMax = NEG_INF;
#pragma unroll
        for (int c = 0; c < 8; c++) {
            int key = k0 + t4 + 4 * c;
            dot[c] = (key <= qi && key < len) ? dot[c] * scale : NEG_INF;
            tileMax = fmaxf(tileMax, dot[c]);
        }
        // the 4 threads of a row are adjacent lanes
        tileMax = fmaxf(tileMax, __shfl_xor_sync(WH_FULL_MASK, tileMax, 1));
        tileMax = fmaxf(tileMax, __shfl_xor_sync(WH_FULL_MASK, tileMax, 2));
        const float mNew = fmaxf(m, tileMax);
        // Key 0 is visible to every row, so m is finite from the first tile on; the guards only keep rows past
        // the end of the sequence (computed, never written) free of NaN arithmetic.
        const float corr = (m == NEG_INF) ? 0.0f : expf(m - mNew);
        float psum = 0.0f;
#pragma unroll
        for (int c = 0; c < 8; c++) {
            float p = (dot[c] == NEG_INF) ? 0.0f : expf(dot[c] - mNew);
            Ps[row * (WH_ATT_BK + 1) + t4 + 4 * c] = p;
            psum += p;
        }
        psum += __shfl_xor_sync(WH_FULL_MASK, psum, 1);
        psum += __shfl_xor_sync(WH_FULL_MASK, psum, 2);
        l = l * corr + psum;
        m = mNew;
#pragma unroll
        for (int r = 0; r < DMAX / 4; r++) {
            acc[r] *= corr;
        }
        __syncwarp();  // P of this row, written by its 4 lanes, is read by all 4

        const int jEnd = wh_min(WH_ATT_BK, lastKey - k0 + 1);
        const float* prow = Ps + row * (WH_ATT_BK + 1);
        for (int j = 0; j < jEnd; j++) {
            float p = prow[j];
            const float* vrow = Vs + j * headDim;
#pragma unroll
            for (int r = 0; r < DMAX / 4; r++) {
                int d = t4 + 4 * r;
                if (d < headDim) {
                    acc[r] += p * vrow[d];
                }
            }
        }
    }

    if (qi < len) {
        const float invL = 1.0f / l;
        float* orow = out + (start + qi) * qStride + (long long) h * headDim;
#pragma unroll
        for (int r = 0; r < DMAX / 4; r++) {
            int d = t4 + 4 * r;
            if (d < headDim) {
                orow[d] = acc[r] * invL;
            }
        }
        if (lse != nullptr && t4 == 0) {
            lse[(start + qi) * heads + h] = m + logf(l);
        }
    }
}

#define WH_ATTENTION_ENTRY(NAME, DMAX)                                                                                   \
    extern "C" __global__ void __launch_bounds__(WH_ATT_THREADS)                                                         \
        NAME(const float* __restrict__ q, const float* __restrict__ k, const float* __restrict__ v, float* __restrict__ out, \
             float* __restrict__ lse, const int* __restrict__ tiles, const int* __restrict__ starts,                     \
             const int* __restrict__ lengths, int heads, int kvHeads, int headDim, float scale) {                         \
        wh_attention_fwd<DMAX>(q, k, v, out, lse, tiles, starts, lengths, heads, kvHeads, headDim, scale);              \
    }

WH_ATTENTION_ENTRY(attention_fwd_d64, 64)
WH_ATTENTION_ENTRY(attention_fwd_d128, 128)
WH_ATTENTION_ENTRY(attention_fwd_d256, 256)

// Probabilities of one sequence for heads h0 .. h0 + gridDim.z - 1, recomputed from q, k and the forward's
// log-sum-exp: probs[hh][i][j] = exp(scale * q_i . k_j - lse[i, h]) for j <= i, 0 above the diagonal. The dot
// product runs in the same order as in the forward, so the probabilities are those the forward used.
// Block (32, 8); grid (ceil(len / 32), ceil(len / 8), head count).
extern "C" __global__ void __launch_bounds__(256) attention_probs_f32(const float* __restrict__ q, const float* __restrict__ k,
                                                                      const float* __restrict__ lse, long long start, int len,
                                                                      int heads, int kvHeads, int headDim, float scale, int h0,
                                                                      float* __restrict__ probs) {
    const int j = blockIdx.x * 32 + threadIdx.x;
    const int i = blockIdx.y * 8 + threadIdx.y;
    const int hh = blockIdx.z;
    if (i >= len || j >= len) {
        return;
    }
    const int h = h0 + hh;
    const int kvh = h / (heads / kvHeads);
    float value = 0.0f;
    if (j <= i) {
        const float* qrow = q + (start + i) * ((long long) heads * headDim) + (long long) h * headDim;
        const float* krow = k + (start + j) * ((long long) kvHeads * headDim) + (long long) kvh * headDim;
        float dot = 0.0f;
        for (int d = 0; d < headDim; d++) {
            dot += qrow[d] * krow[d];
        }
        value = expf(dot * scale - lse[(start + i) * heads + h]);
    }
    probs[((long long) hh * len + i) * len + j] = value;
}
