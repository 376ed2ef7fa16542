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
// Channel groups (the grouped one-device form of a net split into towers, §3.2): x is
// [rows, groups * cg] row-major and group g (channels g*cg .. g*cg+cg-1) draws the keep-mask
// of its own [rows, cg] range at offset + g, i.e. exactly the mask a tower holding only those
// channels draws, so one launch replaces the split / per-group launch / concat. groups = 1 is
// the plain contract above (rows = 1, cg = n: the flat index).
//
// dropout_kernel1<VEC, MASK>: blockIdx.y is the group; grid-stride over the group's Philox
// blocks; thread j owns the group's elements 4j .. 4j+3, i.e. exactly the four words of one
// Philox call (no word is computed twice or thrown away). With VEC (x and y 16-byte aligned,
// and cg % 4 == 0 or one group as one flat row, so the four elements are contiguous and
// 16-byte aligned) a full block is one float4 load and one float4 store; the last, partial
// block and the other cases use scalar accesses. Compute per 16 bytes: one Philox (10
// rounds, ~40 integer ops) and, with several rows, one 32-bit division for the row; far
// below the memory time of an H100 at these sizes.
#pragma once

#include "common.h"
#include "philox.cuh"

namespace ccn {

__device__ __forceinline__ float dropout1(float v, unsigned u, unsigned threshold, float scale) {
  return ((u >> 8) >= threshold) ? v * scale : 0.f;
}

// The row of a group's element i: no division for one row, a 32-bit one while the group's
// indices fit in 32 bits (a fraction of the 64-bit division's instructions).
__device__ __forceinline__ long long dropout_row(long long i, long long rows, long long cg, bool narrow) {
  if (rows == 1) return 0;
  return narrow ? static_cast<long long>(static_cast<unsigned>(i) / static_cast<unsigned>(cg)) : i / cg;
}

template <bool VEC, bool MASK>
__global__ void dropout_kernel1(const float* __restrict__ x, float* __restrict__ y, long long rows, long long cg,
                                long long ld, unsigned long long seed, unsigned long long offset, unsigned threshold,
                                float scale) {
  const long long n = rows * cg;  // elements of this group
  const long long blocks = (n + 3) / 4;
  const bool narrow = n <= 0xffffffffLL;
  const long long stride = (long long)gridDim.x * blockDim.x;
  const long long g = blockIdx.y;
  // The host checks offset + groups - 1 < 2^64: a group's counter range never wraps into another's.
  const unsigned long long off = offset + static_cast<unsigned long long>(g);
  const float* __restrict__ xg = x + g * cg;
  float* __restrict__ yg = y + g * cg;
  uint2 key;
  key.x = static_cast<unsigned>(seed);
  key.y = static_cast<unsigned>(seed >> 32);
  for (long long j = (long long)blockIdx.x * blockDim.x + threadIdx.x; j < blocks; j += stride) {
    uint4 u = {0u, 0u, 0u, 0u};
    if (MASK) {
      uint4 ctr;
      ctr.x = static_cast<unsigned>(j);
      ctr.y = static_cast<unsigned>(static_cast<unsigned long long>(j) >> 32);
      ctr.z = static_cast<unsigned>(off);
      ctr.w = static_cast<unsigned>(off >> 32);
      u = philox4x32_10(ctr, key);
    }
    const long long i0 = 4 * j;
    if (VEC && i0 + 4 <= n) {
      // cg % 4 == 0 (or one flat group): the block's four elements share a row and are contiguous.
      const long long r = dropout_row(i0, rows, cg, narrow);
      const long long at = r * ld + (i0 - r * cg);
      float4 a = *reinterpret_cast<const float4*>(xg + at);
      if (MASK) {
        a.x = dropout1(a.x, u.x, threshold, scale); a.y = dropout1(a.y, u.y, threshold, scale);
        a.z = dropout1(a.z, u.z, threshold, scale); a.w = dropout1(a.w, u.w, threshold, scale);
      } else {
        a.x *= scale; a.y *= scale; a.z *= scale; a.w *= scale;
      }
      *reinterpret_cast<float4*>(yg + at) = a;
    } else {
      // The row of element i0, then walk along it (one division per Philox block).
      long long r = dropout_row(i0, rows, cg, narrow);
      long long c = i0 - r * cg;
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        if (i0 + e >= n) break;
        const unsigned w = e == 0 ? u.x : (e == 1 ? u.y : (e == 2 ? u.z : u.w));
        const long long at = r * ld + c;
        yg[at] = MASK ? dropout1(xg[at], w, threshold, scale) : xg[at] * scale;
        if (++c == cg) {
          c = 0;
          ++r;
        }
      }
    }
  }
}

}  // namespace ccn
