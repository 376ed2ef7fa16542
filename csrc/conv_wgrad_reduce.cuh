// The split-K reductions of both wgrads, the float32 one (conv_wgrad.cuh) and the
// tensor-core one (conv_tc_wgrad.cuh): each cuts N*P*Q into chunks of rows, writes one
// partial dw (and db) per chunk, and adds the partials here in chunk order. No atomics:
// every output is one thread's fixed-order float32 sum, bit-identical on every run and in
// every emulator thread order. Launched through conv_bias_grad_partials and
// conv_sum_chunks (conv_wgrad.cu; contract in conv.h), the one translation unit that
// defines them.
// conv_bias_grad_kernel1: db partials. One thread per column (channel) and chunk of rows,
//   summing its rows in order; adjacent threads read adjacent channels (coalesced).
//   Grid: x = column blocks of kConvBiasThreads, y = chunk. Output: out[chunk * cols + col].
// conv_sum_partials_kernel1: out[i] = sum over chunks, in chunk order, of parts[chunk *
//   count + i]; grid-stride loop, one element per thread per iteration (coalesced).
#pragma once

#include "common.h"

namespace ccn {

constexpr int kConvBiasThreads = 128;
constexpr int kConvSumThreads = 256, kConvSumMaxBlocks = 1056;  // 8 blocks of 256 on each of 132 SMs

__global__ void __launch_bounds__(kConvBiasThreads)
    conv_bias_grad_kernel1(const float* __restrict__ dy, float* __restrict__ out, long long rows, int cols,
                           int chunk_rows) {
  const int col = blockIdx.x * kConvBiasThreads + threadIdx.x;
  if (col >= cols) return;
  const long long r0 = (long long)blockIdx.y * chunk_rows;
  const long long r1 = min(r0 + chunk_rows, rows);
  float sum = 0.f;
  for (long long r = r0; r < r1; ++r) sum += dy[r * cols + col];
  out[(long long)blockIdx.y * cols + col] = sum;
}

__global__ void conv_sum_partials_kernel1(const float* __restrict__ parts, float* __restrict__ out, int chunks,
                                          long long count) {
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < count;
       i += (long long)gridDim.x * blockDim.x) {
    float sum = parts[i];
    for (int ch = 1; ch < chunks; ++ch) sum += parts[ch * count + i];
    out[i] = sum;
  }
}

}  // namespace ccn
