// Philox4x32-10 (Salmon, Moraes, Dror, Shaw, "Parallel random numbers: as easy as 1, 2, 3",
// SC 2011; Random123's philox4x32_R with R = 10): a counter-based generator. A 128-bit
// counter and a 64-bit key map to 128 random bits, with no state carried between calls, so
// any thread can draw "random number j" directly. Used by dropout (dropout.cuh, §4.2) and
// by the GPU augmentation kernel; cuda_convnet/random.py is the NumPy twin and states the
// contract, and tests/test_dropout.py checks this file against Random123's
// known-answer vectors.
//
// One round on counter (c0, c1, c2, c3) with key (k0, k1):
//   hi0:lo0 = M0 * c0,  hi1:lo1 = M1 * c2   (32x32 -> 64-bit products: __umulhi and *)
//   counter = (hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0)
// then the key is bumped by the Weyl constants (W0, W1) before the next round.
//
// philox4x32_kernel1: one thread per (counter, key) pair, grid-stride; the test hook
// (static: this header is included by several launcher files).
#pragma once

#include "common.h"

namespace ccn {

constexpr unsigned kPhiloxM0 = 0xD2511F53u, kPhiloxM1 = 0xCD9E8D57u;
constexpr unsigned kPhiloxW0 = 0x9E3779B9u, kPhiloxW1 = 0xBB67AE85u;

__device__ __forceinline__ uint4 philox4x32_10(uint4 c, uint2 k) {
#pragma unroll
  for (int round = 0; round < 10; ++round) {
    if (round) {
      k.x += kPhiloxW0;
      k.y += kPhiloxW1;
    }
    const unsigned hi0 = __umulhi(kPhiloxM0, c.x), lo0 = kPhiloxM0 * c.x;
    const unsigned hi1 = __umulhi(kPhiloxM1, c.z), lo1 = kPhiloxM1 * c.z;
    uint4 next;
    next.x = hi1 ^ c.y ^ k.x;
    next.y = lo1;
    next.z = hi0 ^ c.w ^ k.y;
    next.w = lo0;
    c = next;
  }
  return c;
}

// out[i] = philox4x32_10(counter[i], key[i]); arrays of uint32 words, (n, 4), (n, 2), (n, 4).
static __global__ void philox4x32_kernel1(const unsigned* __restrict__ counters, const unsigned* __restrict__ keys,
                                   unsigned* __restrict__ out, long long n) {
  const long long stride = (long long)gridDim.x * blockDim.x;
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
    uint4 c;
    c.x = counters[4 * i]; c.y = counters[4 * i + 1]; c.z = counters[4 * i + 2]; c.w = counters[4 * i + 3];
    uint2 k;
    k.x = keys[2 * i]; k.y = keys[2 * i + 1];
    uint4 r = philox4x32_10(c, k);
    out[4 * i] = r.x; out[4 * i + 1] = r.y; out[4 * i + 2] = r.z; out[4 * i + 3] = r.w;
  }
}

}  // namespace ccn
