// Dropout (paper §4.2: "setting to zero the output of each hidden neuron with probability
// 0.5"), with the keep-mask of cuda_convnet/random.py reproduced bit for bit:
//
//   j = i / 4;  u = philox4x32_10((j lo, j hi, offset lo, offset hi), (seed lo, seed hi))[i % 4]
//   keep[i] = (u >> 8) >= threshold          (threshold = ceil(p * 2^24), from the host)
//
// so the reference, the emulator and the GPU drop the same units and backward needs no
// stored mask. The one kernel serves every case:
//   train forward  y  = keep ? x  * scale : 0   (scale 1 for "paper", 1/(1-p) for "inverted")
//   backward       dx = keep ? dy * scale : 0   (the same linear map)
//   test           y  = x * scale               (MASK = false; scale 1-p "paper", 1 "inverted")
// Scalars arrive already rounded to float32, one multiply per element, as the reference.
//
// dropout_kernel1<VEC, MASK>: grid-stride over Philox blocks; thread j owns elements
// 4j .. 4j+3, i.e. exactly the four words of one Philox call (no word is computed twice or
// thrown away). With VEC (x and y 16-byte aligned) a full block is one float4 load and one
// float4 store; the last, partial block (n % 4 elements) and the unaligned case use scalar
// accesses. Compute per 16 bytes: one Philox (10 rounds, ~40 integer ops), far below the
// memory time of an H100 at these sizes.
#pragma once

#include "common.h"
#include "philox.cuh"

namespace ccn {

__device__ __forceinline__ float dropout1(float v, unsigned u, unsigned threshold, float scale) {
  return ((u >> 8) >= threshold) ? v * scale : 0.f;
}

template <bool VEC, bool MASK>
__global__ void dropout_kernel1(const float* __restrict__ x, float* __restrict__ y, long long n,
                                unsigned long long seed, unsigned long long offset, unsigned threshold, float scale) {
  const long long blocks = (n + 3) / 4;
  const long long stride = (long long)gridDim.x * blockDim.x;
  uint2 key;
  key.x = static_cast<unsigned>(seed);
  key.y = static_cast<unsigned>(seed >> 32);
  for (long long j = (long long)blockIdx.x * blockDim.x + threadIdx.x; j < blocks; j += stride) {
    uint4 u = {0u, 0u, 0u, 0u};
    if (MASK) {
      uint4 ctr;
      ctr.x = static_cast<unsigned>(j);
      ctr.y = static_cast<unsigned>(static_cast<unsigned long long>(j) >> 32);
      ctr.z = static_cast<unsigned>(offset);
      ctr.w = static_cast<unsigned>(offset >> 32);
      u = philox4x32_10(ctr, key);
    }
    const long long i0 = 4 * j;
    if (VEC && i0 + 4 <= n) {
      float4 a = reinterpret_cast<const float4*>(x)[j];
      if (MASK) {
        a.x = dropout1(a.x, u.x, threshold, scale); a.y = dropout1(a.y, u.y, threshold, scale);
        a.z = dropout1(a.z, u.z, threshold, scale); a.w = dropout1(a.w, u.w, threshold, scale);
      } else {
        a.x *= scale; a.y *= scale; a.z *= scale; a.w *= scale;
      }
      reinterpret_cast<float4*>(y)[j] = a;
    } else {
      const unsigned words[4] = {u.x, u.y, u.z, u.w};
      const int count = (n - i0) < 4 ? static_cast<int>(n - i0) : 4;
      for (int e = 0; e < count; ++e)
        y[i0 + e] = MASK ? dropout1(x[i0 + e], words[e], threshold, scale) : x[i0 + e] * scale;
    }
  }
}

}  // namespace ccn
