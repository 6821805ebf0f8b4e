// Grouped-query attention, flash-style: each block streams key/value tiles through shared memory with an online
// softmax, so the [length x length] score matrix is never stored. fp32 throughout (the CPU reference is fp32
// scores with an fp64 softmax). One core (wh_attention_tile) serves three key rules:
//   - packed sequences, causal (the decoder) or bidirectional (the CLIP vision tower);
//   - one multimodal sequence with the visual-token pruning masks (YOPO): causal, except that visual queries see
//     visual keys in a grid window in both directions; pruned heads drop the visual keys before the softmax
//     (renormalised) or after it (post-softmax zeroing), and their visual rows output 0.
// When asked, the causal forward also writes each row's log-sum-exp so that a second kernel can recompute exact
// probabilities for one sequence at a time (for methods that score heads by where their attention goes) without
// the forward ever holding them; the visual masks have their own probability kernel.
//
// Layout: q, out [T, heads * headDim]; k, v [T, kvHeads * headDim]. Query head h reads KV head
// h / (heads / kvHeads). Packed sequence s covers rows [starts[s], starts[s] + lengths[s]) and attends only within
// itself; work items are (sequence, 32-query tile) pairs listed by the Java side in `tiles`.
//
// The bidirectional and visual variants have not run on a real GPU (nvcc and the CPU emulator of the driver only).
#include "whittle_common.cuh"

#define WH_ATT_BQ 32
#define WH_ATT_BK 32
#define WH_ATT_THREADS 128  // 4 threads per query row

// How a (query, key) pair enters the softmax.
#define WH_KEY_EXCLUDED 0
#define WH_KEY_INCLUDED 1
#define WH_KEY_ZEROED 2  // in the softmax denominator, multiplied by 0 after it (post-softmax masking)

// What a rule decides once per query tile (block-uniform): the last key any row of the tile may see, a key range
// [skipFrom, skipTo) that no row of the tile sees (its key tiles are not visited, and its keys are never read), and
// whether every row of the tile outputs 0 (nothing is computed or read then).
struct WhTilePlan {
    int lastKey;
    int skipFrom;
    int skipTo;
    bool allZero;
};

// Packed sequences: every key of the sequence, or (causal) the keys up to the query.
struct WhSequenceRule {
    int len;
    bool causal;

    __device__ __forceinline__ WhTilePlan plan(int q0) const {
        WhTilePlan t;
        t.lastKey = causal ? wh_min(q0 + WH_ATT_BQ - 1, len - 1) : len - 1;
        t.skipFrom = 0;
        t.skipTo = 0;
        t.allZero = false;
        return t;
    }
    __device__ __forceinline__ int kind(int qi, int key) const {
        return (!causal || key <= qi) ? WH_KEY_INCLUDED : WH_KEY_EXCLUDED;
    }
    __device__ __forceinline__ bool zeroRow(int) const {
        return false;
    }
};

// One multimodal sequence of len rows: prefix rows [0, prefix), visual rows [prefix, visualEnd) on a row-major
// grid of gridCols columns, text after. As CpuBackend.visualMaskedAttention: a visual query sees the visual keys
// within `radius` grid rows and columns of itself and every earlier non-visual key; every other query sees the
// keys up to itself. In a pruned head (keep false) visual keys are excluded (renormalize) or zeroed after the
// softmax, and visual rows output 0.
struct WhVisualRule {
    int len;
    int prefix;
    int visualEnd;
    int gridCols;
    int radius;
    bool keep;
    bool renormalize;

    __device__ __forceinline__ bool visual(int i) const {
        return i >= prefix && i < visualEnd;
    }
    __device__ __forceinline__ WhTilePlan plan(int q0) const {
        WhTilePlan t;
        const int lastRow = wh_min(q0 + WH_ATT_BQ - 1, len - 1);
        const bool allVisual = q0 >= prefix && lastRow < visualEnd;
        const bool anyVisual = q0 < visualEnd && lastRow >= prefix;
        t.allZero = !keep && allVisual;
        t.lastKey = lastRow;
        if (keep && anyVisual) {
            // the last visual row's window reaches `radius` grid rows further
            const int lastVisualRow = (wh_min(lastRow, visualEnd - 1) - prefix) / gridCols;
            const long long windowEnd = prefix + ((long long) lastVisualRow + radius + 1) * gridCols - 1;
            t.lastKey = wh_max(t.lastKey, (int) (windowEnd < visualEnd - 1 ? windowEnd : visualEnd - 1));
        }
        t.skipFrom = 0;
        t.skipTo = 0;
        if (!keep && renormalize) {
            // no row of a pruned head sees a visual key (and its visual rows are not computed)
            t.skipFrom = prefix;
            t.skipTo = visualEnd;
        } else if (keep && allVisual) {
            // visual rows see no visual key above their windows
            const int firstVisualRow = (q0 - prefix) / gridCols;
            t.skipFrom = prefix;
            t.skipTo = prefix + wh_max(0, firstVisualRow - radius) * gridCols;
        }
        return t;
    }
    __device__ __forceinline__ int kind(int qi, int key) const {
        const bool vq = visual(qi);
        const bool vk = visual(key);
        bool allowed;
        if (vq && vk) {
            const int a = qi - prefix;
            const int b = key - prefix;
            const int ra = a / gridCols;
            const int rb = b / gridCols;
            const int dr = ra - rb;
            const int dc = (a - ra * gridCols) - (b - rb * gridCols);
            allowed = dr <= radius && -dr <= radius && dc <= radius && -dc <= radius;
        } else {
            allowed = key <= qi;
        }
        if (!allowed) {
            return WH_KEY_EXCLUDED;
        }
        if (vk && !keep) {
            return renormalize ? WH_KEY_EXCLUDED : WH_KEY_ZEROED;
        }
        return WH_KEY_INCLUDED;
    }
    __device__ __forceinline__ bool zeroRow(int qi) const {
        return !keep && visual(qi);
    }
};

// One (query tile, head) work item over rows [start, start + len) of the packed tensors: out rows of the tile,
// and lse when not null. Dynamic shared memory (floats): Q tile [BQ][headDim + 1], K tile [BK][headDim + 1],
// V tile [BK][headDim], P tile [BQ][BK + 1]. The Java side computes the same size.
template <int DMAX, class Rule>
__device__ __forceinline__ void wh_attention_tile(const float* __restrict__ q, const float* __restrict__ k,
                                                  const float* __restrict__ v, float* __restrict__ out,
                                                  float* __restrict__ lse, long long start, int len, int q0, int h, int heads,
                                                  int kvHeads, int headDim, float scale, const Rule& rule) {
    WH_DYNAMIC_SMEM(float, smem);
    const float NEG_INF = -__int_as_float(0x7f800000);
    const int ld = headDim + 1;  // odd row stride: rows of Q and K fall in different banks
    float* Qs = smem;
    float* Ks = Qs + WH_ATT_BQ * ld;
    float* Vs = Ks + WH_ATT_BK * ld;
    float* Ps = Vs + WH_ATT_BK * headDim;

    const int kvh = h / (heads / kvHeads);
    const long long qStride = (long long) heads * headDim;
    const long long kvStride = (long long) kvHeads * headDim;
    const int tid = threadIdx.x;
    const int row = tid >> 2;
    const int t4 = tid & 3;
    const WhTilePlan plan = rule.plan(q0);

    if (plan.allZero) {
        for (int idx = tid; idx < WH_ATT_BQ * headDim; idx += WH_ATT_THREADS) {
            int r = idx / headDim;
            int d = idx - r * headDim;
            if (q0 + r < len) {
                out[(start + q0 + r) * qStride + (long long) h * headDim + d] = 0.0f;
            }
        }
        return;
    }

    for (int idx = tid; idx < WH_ATT_BQ * headDim; idx += WH_ATT_THREADS) {
        int r = idx / headDim;
        int d = idx - r * headDim;
        bool read = q0 + r < len && !rule.zeroRow(q0 + r);
        Qs[r * ld + d] = read ? q[(start + q0 + r) * qStride + (long long) h * headDim + d] : 0.0f;
    }

    const int qi = q0 + row;  // this thread's query, relative to the sequence start
    float m = NEG_INF;
    float l = 0.0f;
    float acc[DMAX / 4];
#pragma unroll
    for (int r = 0; r < DMAX / 4; r++) {
        acc[r] = 0.0f;
    }

    for (int k0 = 0; k0 <= plan.lastKey;) {
        if (k0 >= plan.skipFrom && k0 + WH_ATT_BK <= plan.skipTo) {
            k0 = (plan.skipTo / WH_ATT_BK) * WH_ATT_BK;  // the tile that straddles skipTo, if any, comes next
            continue;
        }
        __syncthreads();  // the previous tile's K, V and P are no longer read
        for (int idx = tid; idx < WH_ATT_BK * headDim; idx += WH_ATT_THREADS) {
            int j = idx / headDim;
            int d = idx - j * headDim;
            int key = k0 + j;
            bool read = key < len && !(key >= plan.skipFrom && key < plan.skipTo);
            long long off = (start + key) * kvStride + (long long) kvh * headDim + d;
            Ks[j * ld + d] = read ? k[off] : 0.0f;
            Vs[j * headDim + d] = read ? v[off] : 0.0f;
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
        unsigned int zeroed = 0;  // bit c: key t4 + 4c is in the denominator only
        float tileMax = NEG_INF;
#pragma unroll
        for (int c = 0; c < 8; c++) {
            int key = k0 + t4 + 4 * c;
            bool seen = key < len && key <= plan.lastKey && !(key >= plan.skipFrom && key < plan.skipTo);
            int kind = seen ? rule.kind(qi, key) : WH_KEY_EXCLUDED;
            zeroed |= (kind == WH_KEY_ZEROED ? 1u : 0u) << c;
            dot[c] = kind != WH_KEY_EXCLUDED ? dot[c] * scale : NEG_INF;
            tileMax = fmaxf(tileMax, dot[c]);
        }
        // the 4 threads of a row are adjacent lanes
        tileMax = fmaxf(tileMax, __shfl_xor_sync(WH_FULL_MASK, tileMax, 1));
        tileMax = fmaxf(tileMax, __shfl_xor_sync(WH_FULL_MASK, tileMax, 2));
        const float mNew = fmaxf(m, tileMax);
        // A row has seen no key while m is -inf (always the case for rows past the end of the sequence, which are
        // computed but never written); the guards keep those rows free of NaN arithmetic.
        const float corr = (m == NEG_INF) ? 0.0f : expf(m - mNew);
        float psum = 0.0f;
#pragma unroll
        for (int c = 0; c < 8; c++) {
            float p = (dot[c] == NEG_INF) ? 0.0f : expf(dot[c] - mNew);
            Ps[row * (WH_ATT_BK + 1) + t4 + 4 * c] = ((zeroed >> c) & 1u) ? 0.0f : p;
            psum += p;  // zeroed keys count in the denominator only
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

        const int jEnd = wh_min(WH_ATT_BK, plan.lastKey - k0 + 1);
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
        k0 += WH_ATT_BK;
    }

    if (qi < len) {
        // a row without any key (only possible in a pruned head's masks) outputs 0, as the CPU backend does
        const bool zero = rule.zeroRow(qi) || l == 0.0f;
        const float invL = zero ? 0.0f : 1.0f / l;
        float* orow = out + (start + qi) * qStride + (long long) h * headDim;
#pragma unroll
        for (int r = 0; r < DMAX / 4; r++) {
            int d = t4 + 4 * r;
            if (d < headDim) {
                orow[d] = zero ? 0.0f : acc[r] * invL;
            }
        }
        if (lse != nullptr && t4 == 0) {
            lse[(start + qi) * heads + h] = m + logf(l);
        }
    }
}

// Packed sequences; grid (tiles, heads), block 128.
template <int DMAX>
__device__ __forceinline__ void wh_attention_fwd(const float* __restrict__ q, const float* __restrict__ k,
                                                 const float* __restrict__ v, float* __restrict__ out,
                                                 float* __restrict__ lse, const int* __restrict__ tiles,
                                                 const int* __restrict__ starts, const int* __restrict__ lengths, int heads,
                                                 int kvHeads, int headDim, float scale, bool causal) {
    const int seq = tiles[2 * blockIdx.x];
    const int q0 = tiles[2 * blockIdx.x + 1];
    WhSequenceRule rule;
    rule.len = lengths[seq];
    rule.causal = causal;
    wh_attention_tile<DMAX>(q, k, v, out, lse, (long long) starts[seq], rule.len, q0, (int) blockIdx.y, heads, kvHeads, headDim,
                            scale, rule);
}

#define WH_ATTENTION_ENTRY(NAME, DMAX)                                                                                   \
    extern "C" __global__ void __launch_bounds__(WH_ATT_THREADS)                                                         \
        NAME(const float* __restrict__ q, const float* __restrict__ k, const float* __restrict__ v, float* __restrict__ out, \
             float* __restrict__ lse, const int* __restrict__ tiles, const int* __restrict__ starts,                     \
             const int* __restrict__ lengths, int heads, int kvHeads, int headDim, float scale) {                         \
        wh_attention_fwd<DMAX>(q, k, v, out, lse, tiles, starts, lengths, heads, kvHeads, headDim, scale, true);        \
    }

WH_ATTENTION_ENTRY(attention_fwd_d64, 64)
WH_ATTENTION_ENTRY(attention_fwd_d128, 128)
WH_ATTENTION_ENTRY(attention_fwd_d256, 256)

// Non-causal (encoder) attention over packed sequences: every query sees every key of its sequence.
#define WH_BIDIR_ATTENTION_ENTRY(NAME, DMAX)                                                                             \
    extern "C" __global__ void __launch_bounds__(WH_ATT_THREADS)                                                         \
        NAME(const float* __restrict__ q, const float* __restrict__ k, const float* __restrict__ v, float* __restrict__ out, \
             const int* __restrict__ tiles, const int* __restrict__ starts, const int* __restrict__ lengths, int heads,   \
             int kvHeads, int headDim, float scale) {                                                                    \
        wh_attention_fwd<DMAX>(q, k, v, out, nullptr, tiles, starts, lengths, heads, kvHeads, headDim, scale, false);   \
    }

WH_BIDIR_ATTENTION_ENTRY(attention_bidir_fwd_d64, 64)
WH_BIDIR_ATTENTION_ENTRY(attention_bidir_fwd_d128, 128)
WH_BIDIR_ATTENTION_ENTRY(attention_bidir_fwd_d256, 256)

// One multimodal sequence of len rows with the visual masks (WhVisualRule); keep[h] != 0 keeps head h.
// Grid (ceil(len / 32), heads), block 128. With renormalize this is also the sparse pruned attention: a pruned
// head never reads its visual q rows nor any visual k/v row, and a kept head's visual rows read only the prefix
// and the key tiles their windows reach.
#define WH_VISUAL_ATTENTION_ENTRY(NAME, DMAX)                                                                            \
    extern "C" __global__ void __launch_bounds__(WH_ATT_THREADS)                                                         \
        NAME(const float* __restrict__ q, const float* __restrict__ k, const float* __restrict__ v, float* __restrict__ out, \
             int len, const int* __restrict__ keep, int heads, int kvHeads, int headDim, float scale, int prefix,          \
             int gridRows, int gridCols, int radius, int renormalize) {                                                  \
        WhVisualRule rule;                                                                                               \
        rule.len = len;                                                                                                  \
        rule.prefix = prefix;                                                                                            \
        rule.visualEnd = prefix + gridRows * gridCols;                                                                   \
        rule.gridCols = gridCols;                                                                                        \
        rule.radius = radius;                                                                                            \
        rule.keep = keep[blockIdx.y] != 0;                                                                               \
        rule.renormalize = renormalize != 0;                                                                             \
        wh_attention_tile<DMAX>(q, k, v, out, nullptr, 0LL, len, (int) blockIdx.x * WH_ATT_BQ, (int) blockIdx.y, heads,  \
                                kvHeads, headDim, scale, rule);                                                          \
    }

WH_VISUAL_ATTENTION_ENTRY(visual_attention_fwd_d64, 64)
WH_VISUAL_ATTENTION_ENTRY(visual_attention_fwd_d128, 128)
WH_VISUAL_ATTENTION_ENTRY(visual_attention_fwd_d256, 256)

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

// The final weights of the visual masks for heads h0 .. h0 + gridDim.y - 1, as the CPU backend reports them to an
// observer: row i of head h is the softmax (fp64 exponentials and sum, as the CPU) of scale * q_i . k_j over the
// keys the masks do not exclude, with zeroed keys (post-softmax masking) then set to 0; a row with no key is all 0.
// Rows of a pruned head's visual queries are computed like any other (the forward zeroes their output only).
// One warp per query row; the row's scores are staged in its own output row. Block 256 (8 rows), grid
// (ceil(len / 8), head count).
extern "C" __global__ void __launch_bounds__(256) visual_attention_probs_f32(
    const float* __restrict__ q, const float* __restrict__ k, int len, const int* __restrict__ keep, int heads, int kvHeads,
    int headDim, float scale, int prefix, int gridRows, int gridCols, int radius, int renormalize, int h0,
    float* __restrict__ probs) {
    const int lane = threadIdx.x & 31;
    const int i = blockIdx.x * 8 + (threadIdx.x >> 5);
    const int hh = blockIdx.y;
    const int h = h0 + hh;
    if (i >= len) {
        return;  // the whole warp: i is uniform across its lanes
    }
    WhVisualRule rule;
    rule.len = len;
    rule.prefix = prefix;
    rule.visualEnd = prefix + gridRows * gridCols;
    rule.gridCols = gridCols;
    rule.radius = radius;
    rule.keep = keep[h] != 0;
    rule.renormalize = renormalize != 0;
    const float NEG_INF = -__int_as_float(0x7f800000);
    const int kvh = h / (heads / kvHeads);
    const float* qrow = q + (long long) i * heads * headDim + (long long) h * headDim;
    float* prow = probs + ((long long) hh * len + i) * len;
    float m = NEG_INF;
    for (int j = lane; j < len; j += 32) {
        float s = NEG_INF;
        if (rule.kind(i, j) != WH_KEY_EXCLUDED) {
            const float* krow = k + (long long) j * kvHeads * headDim + (long long) kvh * headDim;
            float dot = 0.0f;
            for (int d = 0; d < headDim; d++) {
                dot += qrow[d] * krow[d];
            }
            s = dot * scale;
        }
        prow[j] = s;
        m = fmaxf(m, s);
    }
    m = wh_warp_max(m);
    double sum = 0.0;
    if (m != NEG_INF) {
        for (int j = lane; j < len; j += 32) {
            if (rule.kind(i, j) != WH_KEY_EXCLUDED) {
                sum += exp((double) prow[j] - (double) m);
            }
        }
    }
    sum = wh_warp_sum(sum);
    for (int j = lane; j < len; j += 32) {
        float p = 0.0f;
        if (m != NEG_INF && rule.kind(i, j) == WH_KEY_INCLUDED) {
            p = (float) (exp((double) prow[j] - (double) m) / sum);
        }
        prow[j] = p;
    }
}
