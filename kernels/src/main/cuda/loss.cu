// Negative log-likelihood of next-token targets under the log-softmax of logits rows (evaluation perplexity).
#include "whittle_common.cuh"

// out[r] = logsumexp(logits[r, :]) - logits[r, targets[r]], in fp64 (exp and sum in fp64, as the CPU backend);
// a negative target gives NaN (no prediction at that position). One block per row, grid-stride over rows.
extern "C" __global__ void __launch_bounds__(256) cross_entropy_f32(const float* __restrict__ logits, long long rows,
                                                                    int vocab, const int* __restrict__ targets,
                                                                    double* __restrict__ out) {
    __shared__ float maxScratch[32];
    __shared__ double sumScratch[32];
    for (long long r = blockIdx.x; r < rows; r += gridDim.x) {
        const float* row = logits + r * vocab;
        float m = -__int_as_float(0x7f800000);
        for (int j = threadIdx.x; j < vocab; j += blockDim.x) {
            m = fmaxf(m, row[j]);
        }
        m = wh_block_max(m, maxScratch);
        double sum = 0.0;
        for (int j = threadIdx.x; j < vocab; j += blockDim.x) {
            sum += exp((double) row[j] - (double) m);
        }
        sum = wh_block_sum(sum, sumScratch);
        if (threadIdx.x == 0) {
            int t = targets[r];
            out[r] = t < 0 ? __longlong_as_double(0x7ff8000000000000LL) : (double) m + log(sum) - (double) row[t];
        }
    }
}
