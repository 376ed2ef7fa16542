// The paper's update rule (§5), fused over every parameter tensor of the net in ONE launch:
//
//   v <- momentum * v - (weight_decay * lr) * w - lr * <dL/dw>;   w <- w + v
//
// evaluated exactly as cuda_convnet/reference/sgd.py does in float32 (v = m*v; v -= d*w;
// v -= lr*g; w += v, each product rounded on its own): __fmul_rn / __fadd_rn forbid nvcc's
// FMA contraction, so the GPU, the emulator and the reference agree bit for bit.
//
// The tensors arrive as a table passed BY VALUE as a kernel parameter (SgdTable, about
// 3 KB, under the 4 KB kernel-parameter limit of every CUDA version; __grid_constant__ so
// the dynamically indexed table is read in place from the parameter bank, never copied to
// local memory). No device allocation, no host-to-device copy, no synchronisation: the
// whole update of AlexNet's 16 tensors (61M parameters) is one launch. A launcher with
// more than kSgdMaxTensors tensors issues one launch per kSgdMaxTensors.
//
// sgd_update_kernel1: the tensors' work laid end to end as "units": tensor i contributes
// n4[i] float4 units (16-byte accesses; n4 = n/4 when w, g, v are all 16-byte aligned,
// else 0) followed by its n - 4*n4 scalar units. unit_start[] is the prefix sum of the
// units. Thread t handles units t, t + stride, ... (grid-stride, coalesced: neighbouring
// threads take neighbouring units of the same tensor); since its units only increase, the
// tensor index it looks up only moves forward (one compare per unit, no search).
#pragma once

#include "common.h"

namespace ccn {

constexpr int kSgdMaxTensors = 64;

struct SgdTable {
  float* w[kSgdMaxTensors];
  const float* g[kSgdMaxTensors];
  float* v[kSgdMaxTensors];
  long long n[kSgdMaxTensors];                // elements
  long long n4[kSgdMaxTensors];               // float4 units (0: unaligned tensor)
  long long unit_start[kSgdMaxTensors + 1];   // prefix sum of n4 + (n - 4 n4)
  int count;
};
static_assert(sizeof(SgdTable) <= 4096, "the SGD table must fit the 4 KB kernel-parameter space");

__device__ __forceinline__ void sgd1(float& w, float g, float& v, float lr, float momentum, float decay_lr) {
  float nv = __fmul_rn(momentum, v);
  nv = __fadd_rn(nv, -__fmul_rn(decay_lr, w));
  nv = __fadd_rn(nv, -__fmul_rn(lr, g));
  v = nv;
  w = __fadd_rn(w, nv);
}

__global__ void __launch_bounds__(256)
    sgd_update_kernel1(const __grid_constant__ SgdTable table, float lr, float momentum, float decay_lr) {
  const long long total = table.unit_start[table.count];
  const long long stride = (long long)gridDim.x * blockDim.x;
  int t = 0;
  for (long long u = (long long)blockIdx.x * blockDim.x + threadIdx.x; u < total; u += stride) {
    while (u >= table.unit_start[t + 1]) ++t;
    const long long local = u - table.unit_start[t];
    float* w = table.w[t];
    const float* g = table.g[t];
    float* v = table.v[t];
    if (local < table.n4[t]) {
      float4 wv = reinterpret_cast<float4*>(w)[local];
      const float4 gv = reinterpret_cast<const float4*>(g)[local];
      float4 vv = reinterpret_cast<float4*>(v)[local];
      sgd1(wv.x, gv.x, vv.x, lr, momentum, decay_lr);
      sgd1(wv.y, gv.y, vv.y, lr, momentum, decay_lr);
      sgd1(wv.z, gv.z, vv.z, lr, momentum, decay_lr);
      sgd1(wv.w, gv.w, vv.w, lr, momentum, decay_lr);
      reinterpret_cast<float4*>(w)[local] = wv;
      reinterpret_cast<float4*>(v)[local] = vv;
    } else {
      const long long e = 4 * table.n4[t] + (local - table.n4[t]);
      float we = w[e], ve = v[e];
      sgd1(we, g[e], ve, lr, momentum, decay_lr);
      w[e] = we;
      v[e] = ve;
    }
  }
}

}  // namespace ccn
