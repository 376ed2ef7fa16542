// Elementwise activations (paper §3.1: ReLU, "f(x) = max(0, x)"; tanh, the saturating
// nonlinearity of Figure 1).
//
// map_kernel1<Op, VEC> (forward, y = Op(x)) and map2_kernel1<Op, VEC> (backward,
// dx = Op(y, dy)): grid-stride loops, thread i handles items i, i + stride, ... With VEC
// the body moves 16 bytes per access (float4) over the first n/4*4 elements and a scalar
// loop does the tail; without VEC (a pointer not 16-byte aligned) everything goes through
// the scalar loop. Memory-bound: one read (two for backward) and one write per element.
// Both backward ops take the forward *output* y, as the reference does. The ops are the
// small functors below; one kernel template serves them all.
#pragma once

#include "common.h"

namespace ccn {

struct Relu {  // NaN stays NaN
  __device__ __forceinline__ float operator()(float v) const { return (v <= 0.f) ? 0.f : v; }
};
struct ReluGrad {
  __device__ __forceinline__ float operator()(float y, float dy) const { return (y > 0.f) ? dy : 0.f; }
};
struct Tanh {  // tanhf, not the approximate tanh.approx.f32: a few ulp, within the reference tolerance
  __device__ __forceinline__ float operator()(float v) const { return tanhf(v); }
};
struct TanhGrad {
  __device__ __forceinline__ float operator()(float y, float dy) const { return dy * (1.f - y * y); }
};

template <typename Op, bool VEC>
__global__ void map_kernel1(const float* __restrict__ x, float* __restrict__ y, long long n) {
  const Op op;
  long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  const long long stride = (long long)gridDim.x * blockDim.x;
  long long n4 = VEC ? n / 4 : 0;
  for (long long v = i; v < n4; v += stride) {
    float4 a = reinterpret_cast<const float4*>(x)[v];
    a.x = op(a.x); a.y = op(a.y); a.z = op(a.z); a.w = op(a.w);
    reinterpret_cast<float4*>(y)[v] = a;
  }
  for (long long s = n4 * 4 + i; s < n; s += stride) y[s] = op(x[s]);
}

template <typename Op, bool VEC>
__global__ void map2_kernel1(const float* __restrict__ y, const float* __restrict__ dy, float* __restrict__ dx,
                             long long n) {
  const Op op;
  long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  const long long stride = (long long)gridDim.x * blockDim.x;
  long long n4 = VEC ? n / 4 : 0;
  for (long long v = i; v < n4; v += stride) {
    float4 a = reinterpret_cast<const float4*>(y)[v];
    float4 g = reinterpret_cast<const float4*>(dy)[v];
    g.x = op(a.x, g.x); g.y = op(a.y, g.y); g.z = op(a.z, g.z); g.w = op(a.w, g.w);
    reinterpret_cast<float4*>(dx)[v] = g;
  }
  for (long long s = n4 * 4 + i; s < n; s += stride) dx[s] = op(y[s], dy[s]);
}

}  // namespace ccn
