// MoE routing: softmax over all experts of each token's router logits, top-k with ties to the lower expert
// index, optional renormalisation of the k weights. Matches the CPU backend: probabilities in fp64 rounded to
// fp32, selection on the fp32 values, renormalisation by the fp64 sum of the selected fp32 values plus eps.
#include "whittle_common.cuh"

#define WH_ROUTE_MAX_PER_LANE 8  // experts <= 256

// (value, index) of the larger; equal values go to the lower index.
__device__ __forceinline__ bool wh_route_better(float v, int i, float bestV, int bestI) {
    return v > bestV || (v == bestV && i < bestI);
}

// One warp per token. experts <= 256, 1 <= topK <= experts (checked on the Java side).
extern "C" __global__ void route_topk_f32(const float* __restrict__ logits, long long tokens, int experts, int topK,
                                          int renormalize, double renormEps, int* __restrict__ outExperts,
                                          float* __restrict__ outWeights) {
    const int lane = threadIdx.x & 31;
    const long long warpsPerGrid = (long long) gridDim.x * (blockDim.x >> 5);
    for (long long t = (long long) blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5); t < tokens; t += warpsPerGrid) {
        const float* row = logits + t * experts;
        float v[WH_ROUTE_MAX_PER_LANE];
        float m = -__int_as_float(0x7f800000);
#pragma unroll
        for (int c = 0; c < WH_ROUTE_MAX_PER_LANE; c++) {
            int e = lane + 32 * c;
            v[c] = e < experts ? row[e] : -__int_as_float(0x7f800000);
            m = fmaxf(m, v[c]);
        }
        m = wh_warp_max(m);
        double p[WH_ROUTE_MAX_PER_LANE];
        double sum = 0.0;
#pragma unroll
        for (int c = 0; c < WH_ROUTE_MAX_PER_LANE; c++) {
            int e = lane + 32 * c;
            p[c] = e < experts ? exp((double) v[c] - (double) m) : 0.0;
            sum += p[c];
        }
        sum = wh_warp_sum(sum);
        float prob[WH_ROUTE_MAX_PER_LANE];
        unsigned int taken = 0;  // bit c: expert lane + 32c already selected (or absent)
#pragma unroll
        for (int c = 0; c < WH_ROUTE_MAX_PER_LANE; c++) {
            int e = lane + 32 * c;
            prob[c] = (float) (p[c] / sum);
            if (e >= experts) {
                taken |= 1u << c;
            }
        }
        double selected = 0.0;
        for (int k = 0; k < topK; k++) {
            float bestV = -1.0f;  // probabilities are >= 0, so any present expert beats it
            int bestI = 0x7fffffff;
#pragma unroll
            for (int c = 0; c < WH_ROUTE_MAX_PER_LANE; c++) {
                int e = lane + 32 * c;
                if (!(taken & (1u << c)) && wh_route_better(prob[c], e, bestV, bestI)) {
                    bestV = prob[c];
                    bestI = e;
                }
            }
            for (int o = 16; o > 0; o >>= 1) {
                float ov = __shfl_xor_sync(WH_FULL_MASK, bestV, o);
                int oi = __shfl_xor_sync(WH_FULL_MASK, bestI, o);
                if (wh_route_better(ov, oi, bestV, bestI)) {
                    bestV = ov;
                    bestI = oi;
                }
            }
            if ((bestI & 31) == lane) {
                taken |= 1u << (bestI >> 5);
            }
            selected += (double) bestV;
            if (lane == 0) {
                outExperts[t * topK + k] = bestI;
                outWeights[t * topK + k] = bestV;
            }
        }
        if (renormalize && lane == 0) {
            for (int k = 0; k < topK; k++) {
                outWeights[t * topK + k] = (float) ((double) outWeights[t * topK + k] / (selected + renormEps));
            }
        }
    }
}
