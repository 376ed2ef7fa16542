// Elementwise activations (paper §3.1: ReLU, "f(x) = max(0, x)"; tanh, the saturating
// nonlinearity of Figure 1).
//
// relu_forward_kernel1 / relu_backward_kernel1<VEC>, tanh_forward_kernel1 /
// tanh_backward_kernel1<VEC>: grid-stride loops, thread i handles items i, i + stride, ...
// With VEC the body moves 16 bytes per access (float4) over the first n/4*4 elements and a
// scalar loop does the tail; without VEC (a pointer not 16-byte aligned) everything goes
// through the scalar loop. Memory-bound: one read (two for backward) and one write per
// element. Both backward kernels take the forward *output* y, as the reference does.
#pragma once

#include "common.h"

namespace ccn {

__device__ __forceinline__ float relu1(float v) { return (v <= 0.f) ? 0.f : v; }  // NaN stays NaN
__device__ __forceinline__ float relu_grad1(float y, float dy) { return (y > 0.f) ? dy : 0.f; }

template <bool VEC>
__global__ void relu_forward_kernel1(const float* __restrict__ x, float* __restrict__ y, long long n) {
  long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  const long long stride = (long long)gridDim.x * blockDim.x;
  long long n4 = VEC ? n / 4 : 0;
  for (long long v = i; v < n4; v += stride) {
    float4 a = reinterpret_cast<const float4*>(x)[v];
    a.x = relu1(a.x); a.y = relu1(a.y); a.z = relu1(a.z); a.w = relu1(a.w);
    reinterpret_cast<float4*>(y)[v] = a;
  }
  for (long long s = n4 * 4 + i; s < n; s += stride) y[s] = relu1(x[s]);
}

template <bool VEC>
__global__ void relu_backward_kernel1(const float* __restrict__ y, const float* __restrict__ dy,
                                      float* __restrict__ dx, long long n) {
  long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  const long long stride = (long long)gridDim.x * blockDim.x;
  long long n4 = VEC ? n / 4 : 0;
  for (long long v = i; v < n4; v += stride) {
    float4 a = reinterpret_cast<const float4*>(y)[v];
    float4 g = reinterpret_cast<const float4*>(dy)[v];
    g.x = relu_grad1(a.x, g.x); g.y = relu_grad1(a.y, g.y); g.z = relu_grad1(a.z, g.z); g.w = relu_grad1(a.w, g.w);
    reinterpret_cast<float4*>(dx)[v] = g;
  }
  for (long long s = n4 * 4 + i; s < n; s += stride) dx[s] = relu_grad1(y[s], dy[s]);
}

// tanhf, not the approximate tanh.approx.f32: a few ulp, within the reference tolerance.
__device__ __forceinline__ float tanh1(float v) { return tanhf(v); }
__device__ __forceinline__ float tanh_grad1(float y, float dy) { return dy * (1.f - y * y); }

template <bool VEC>
__global__ void tanh_forward_kernel1(const float* __restrict__ x, float* __restrict__ y, long long n) {
  long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  const long long stride = (long long)gridDim.x * blockDim.x;
  long long n4 = VEC ? n / 4 : 0;
  for (long long v = i; v < n4; v += stride) {
    float4 a = reinterpret_cast<const float4*>(x)[v];
    a.x = tanh1(a.x); a.y = tanh1(a.y); a.z = tanh1(a.z); a.w = tanh1(a.w);
    reinterpret_cast<float4*>(y)[v] = a;
  }
  for (long long s = n4 * 4 + i; s < n; s += stride) y[s] = tanh1(x[s]);
}

template <bool VEC>
__global__ void tanh_backward_kernel1(const float* __restrict__ y, const float* __restrict__ dy,
                                      float* __restrict__ dx, long long n) {
  long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  const long long stride = (long long)gridDim.x * blockDim.x;
  long long n4 = VEC ? n / 4 : 0;
  for (long long v = i; v < n4; v += stride) {
    float4 a = reinterpret_cast<const float4*>(y)[v];
    float4 g = reinterpret_cast<const float4*>(dy)[v];
    g.x = tanh_grad1(a.x, g.x); g.y = tanh_grad1(a.y, g.y); g.z = tanh_grad1(a.z, g.z); g.w = tanh_grad1(a.w, g.w);
    reinterpret_cast<float4*>(dx)[v] = g;
  }
  for (long long s = n4 * 4 + i; s < n; s += stride) dx[s] = tanh_grad1(y[s], dy[s]);
}

}  // namespace ccn
