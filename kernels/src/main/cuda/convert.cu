// Element-wise dtype conversions between the storage formats of Hugging Face checkpoints and the fp32
// compute format. Header-free on purpose: the CUDA runtime images carry no headers, so NVRTC must be able
// to compile this file on its own. bf16 and f16 are handled as raw 16-bit patterns.

// bf16 -> f32 is exact: the bf16 bits are the top half of the f32 bits.
extern "C" __global__ void bf16_to_f32(const unsigned short* __restrict__ in, float* __restrict__ out, long long n) {
    long long i = (long long) blockIdx.x * blockDim.x + threadIdx.x;
    long long stride = (long long) gridDim.x * blockDim.x;
    for (; i < n; i += stride) {
        out[i] = __uint_as_float(((unsigned int) in[i]) << 16);
    }
}

// f32 -> bf16 with round-to-nearest-even, NaN -> canonical quiet NaN 0x7FC0 (as PyTorch's c10::BFloat16).
extern "C" __global__ void f32_to_bf16(const float* __restrict__ in, unsigned short* __restrict__ out, long long n) {
    long long i = (long long) blockIdx.x * blockDim.x + threadIdx.x;
    long long stride = (long long) gridDim.x * blockDim.x;
    for (; i < n; i += stride) {
        float f = in[i];
        unsigned int x = __float_as_uint(f);
        if (f != f) {
            out[i] = 0x7FC0;
        } else {
            x += 0x7FFFu + ((x >> 16) & 1u);
            out[i] = (unsigned short) (x >> 16);
        }
    }
}

// f16 -> f32 (exact) through the hardware conversion instruction.
extern "C" __global__ void f16_to_f32(const unsigned short* __restrict__ in, float* __restrict__ out, long long n) {
    long long i = (long long) blockIdx.x * blockDim.x + threadIdx.x;
    long long stride = (long long) gridDim.x * blockDim.x;
    for (; i < n; i += stride) {
        float f;
        asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(in[i]));
        out[i] = f;
    }
}

// f32 -> f16, round-to-nearest-even (cvt.rn).
extern "C" __global__ void f32_to_f16(const float* __restrict__ in, unsigned short* __restrict__ out, long long n) {
    long long i = (long long) blockIdx.x * blockDim.x + threadIdx.x;
    long long stride = (long long) gridDim.x * blockDim.x;
    for (; i < n; i += stride) {
        unsigned short h;
        asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(in[i]));
        out[i] = h;
    }
}
