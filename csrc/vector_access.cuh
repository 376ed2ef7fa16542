// W-wide loads and stores of consecutive floats for kernels templated on their vector
// width: W = 4 is one 16-byte access (the caller guarantees 16-byte alignment), any other
// W is W scalar accesses. Lets one kernel body serve the float4 path and the scalar path.
#pragma once

#include "common.h"

namespace ccn {

template <int W>
__device__ __forceinline__ void load_vec(const float* p, float (&v)[W]) {
  if constexpr (W == 4) {
    const float4 t = *reinterpret_cast<const float4*>(p);
    v[0] = t.x; v[1] = t.y; v[2] = t.z; v[3] = t.w;
  } else {
#pragma unroll
    for (int e = 0; e < W; ++e) v[e] = p[e];
  }
}

template <int W>
__device__ __forceinline__ void store_vec(float* p, const float (&v)[W]) {
  if constexpr (W == 4) {
    float4 t;
    t.x = v[0]; t.y = v[1]; t.z = v[2]; t.w = v[3];
    *reinterpret_cast<float4*>(p) = t;
  } else {
#pragma unroll
    for (int e = 0; e < W; ++e) p[e] = v[e];
  }
}

}  // namespace ccn
