// The net's output layer (§3.5, "a 1000-way softmax"; the loss is "the average across
// training cases of the log-probability of the correct label") and §2's top-1/top-5 error
// counts. logits/probs are [rows, classes] row-major; labels are int32.
//
// softmax_xent_forward_kernel1: one block per row (blockDim a multiple of 32, <= 1024).
//   Thread t handles classes t, t + blockDim, ... of its row. Two block reductions (warp
//   __shfl_xor_sync tree, then one value per warp through shared memory, reduced by warp
//   0): the row max m, then s = sum exp(z) with z = logit - m; probs = exp(z) / s (each
//   thread re-reads the exp values it wrote itself, no barrier needed); thread 0 writes
//   row_loss = log(s) - z[label] (never the log of a rounded probability), or NaN for a
//   label outside [0, classes) (the Python side refuses those before launching).
//   Reductions have a fixed shape, so results do not depend on thread scheduling.
// softmax_xent_mean_kernel1: one block; loss = sum(row_loss) / rows, same fixed tree.
// softmax_xent_backward_kernel1: grid-stride over elements, thread per element:
//   d = (probs - [c == label]) * (1/rows), in the reference's order (bit-exact).
// topk_errors_kernel1: one block per row. The top-k rule (the reference's, never in the
//   model's favour): rank = #classes c != label with prob[c] >= prob[label], and the row is
//   a top-k error iff rank >= k; a row holding any non-finite value (NaN, +-inf) is an
//   error for every k. Two integer block reductions (rank, non-finite count; exact),
//   then thread 0 adds 1 to count[j] for every k_j it misses (integer atomics:
//   order-independent). A tie with the k-th class thus counts against the model.
#pragma once

#include "common.h"

namespace ccn {

constexpr int kMaxTopK = 16;

struct TopKList {
  int k[kMaxTopK];
  int count;
};

// Sum or max of `v` over the block. Every thread of the block must call it; all get the
// result. `scratch` holds one value per warp (32 entries). Two barriers: the second keeps
// a following call from overwriting scratch while warp 0 still reads it.
template <typename T, bool MAX>
__device__ __forceinline__ T block_reduce(T v, T* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
#pragma unroll
  for (int d = 16; d > 0; d >>= 1) {
    T o = __shfl_xor_sync(0xffffffffu, v, d);
    v = MAX ? ((o > v || o != o) ? o : v) : v + o;  // max keeps a NaN, as the reference
  }
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = lane < warps ? scratch[lane] : (MAX ? scratch[0] : T(0));
#pragma unroll
    for (int d = 16; d > 0; d >>= 1) {
      T o = __shfl_xor_sync(0xffffffffu, v, d);
      v = MAX ? ((o > v || o != o) ? o : v) : v + o;  // max keeps a NaN, as the reference
    }
    if (lane == 0) scratch[0] = v;
  }
  __syncthreads();
  T r = scratch[0];
  __syncthreads();
  return r;
}

__global__ void __launch_bounds__(1024)
    softmax_xent_forward_kernel1(const float* __restrict__ logits, const int* __restrict__ labels,
                                 float* __restrict__ probs, float* __restrict__ row_loss, int classes) {
  __shared__ float scratch[32];
  const long long row = blockIdx.x;
  const float* z = logits + row * classes;
  float* p = probs + row * classes;
  // A NaN logit makes the whole row NaN (as in the reference): fmaxf would skip it.
  float m = -INFINITY;
  for (int c = threadIdx.x; c < classes; c += blockDim.x) m = (z[c] > m || z[c] != z[c]) ? z[c] : m;
  m = block_reduce<float, true>(m, scratch);
  float s = 0.f;
  for (int c = threadIdx.x; c < classes; c += blockDim.x) {
    const float e = expf(z[c] - m);
    p[c] = e;
    s += e;
  }
  s = block_reduce<float, false>(s, scratch);
  for (int c = threadIdx.x; c < classes; c += blockDim.x) p[c] = p[c] / s;
  if (threadIdx.x == 0) {
    const int label = labels[row];
    row_loss[row] = (label >= 0 && label < classes) ? logf(s) - (z[label] - m) : NAN;
  }
}

__global__ void __launch_bounds__(1024)
    softmax_xent_mean_kernel1(const float* __restrict__ row_loss, float* __restrict__ loss, long long rows) {
  __shared__ float scratch[32];
  float s = 0.f;
  for (long long r = threadIdx.x; r < rows; r += blockDim.x) s += row_loss[r];
  s = block_reduce<float, false>(s, scratch);
  if (threadIdx.x == 0) loss[0] = s / static_cast<float>(rows);
}

__global__ void softmax_xent_backward_kernel1(const float* __restrict__ probs, const int* __restrict__ labels,
                                              float* __restrict__ dlogits, long long rows, int classes,
                                              float inv_rows) {
  const long long n = rows * classes;
  const long long stride = (long long)gridDim.x * blockDim.x;
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
    const long long row = i / classes;
    const int c = static_cast<int>(i - row * classes);
    float d = probs[i];
    if (c == labels[row]) d -= 1.f;
    dlogits[i] = d * inv_rows;
  }
}

__global__ void __launch_bounds__(1024)
    topk_errors_kernel1(const float* __restrict__ probs, const int* __restrict__ labels, int classes,
                        const __grid_constant__ TopKList ks, int* __restrict__ counts) {
  __shared__ int scratch[32];
  const long long row = blockIdx.x;
  const float* p = probs + row * classes;
  const int label = labels[row];
  const bool valid = label >= 0 && label < classes;
  const float mine = valid ? p[label] : NAN;
  int rank = 0, non_finite = 0;
  for (int c = threadIdx.x; c < classes; c += blockDim.x) {
    const float v = p[c];
    rank += (c != label && v >= mine) ? 1 : 0;
    non_finite += (fabsf(v) <= 3.40282347e38f) ? 0 : 1;  // false for NaN and +-inf
  }
  rank = block_reduce<int, false>(rank, scratch);
  non_finite = block_reduce<int, false>(non_finite, scratch);
  if (threadIdx.x == 0 && valid)
    for (int j = 0; j < ks.count; ++j)
      if (non_finite > 0 || rank >= ks.k[j]) atomicAdd(&counts[j], 1);
}

}  // namespace ccn
