// Launchers of gemm.cuh: the FC layers' GEMM and the bias gradient (contract in ops.h).
#pragma once

#include "common.h"

namespace ccn {

// How gemm runs a call: which kernel (1: gemm_kernel1 64 x 64, 2: gemm_kernel2 128 x 128),
// and the split-K: `splits` slices of k_chunk (the last one shorter), each written to its
// own [M, N] slab of a workspace of workspace_floats (0 when splits == 1) and summed in
// slice order by gemm_sum_splits_kernel1.
struct GemmPlan {
  int version;
  int splits;
  int k_chunk;
  long long workspace_floats;
};

// The plan for an M x N x K product on a device with `sm_count` multiprocessors.
// version: 0 picks (2 when M and N >= 128, else 1), 1 or 2 forces that kernel.
// splits: 0 picks: when the tiles fill less than one wave (sm_count x the kernel's
// resident blocks per SM), enough slices of K to fill it (even, whole K steps of 16), at
// most ceil(K / 64) and 64 of them; 1: no split; n > 1: at most n slices (k_chunk
// rounded up to whole K steps).
// Throws std::invalid_argument for a version outside 0..2 or splits < 0.
GemmPlan gemm_plan(int M, int N, int K, int version, int splits, int sm_count);

// C[M,N] = alpha * op(A) op(B) + beta * C + bias[n], then ReLU if `relu`.
// op(A) is M x K: A is stored [M,K] (trans_a = false) or [K,M] (trans_a = true).
// op(B) is K x N: B is stored [K,N] (trans_b = false) or [N,K] (trans_b = true).
// beta == 0 never reads C (it may hold garbage); bias may be null.
// version: 0 lets the launcher pick (gemm_kernel2 when M and N are >= 128, else
// gemm_kernel1); 1 or 2 forces gemm_kernel<version> (both zero-fill ragged edges, so either
// runs any size); any other value throws.
// Split: gemm_plan(M, N, K, version, splits, device_sm_count()), except that splits == 0
// with a null workspace runs unsplit. A split needs `workspace` (not aliasing A, B, C) of at
// least the plan's workspace_floats: std::invalid_argument otherwise. The result is
// bit-identical across runs on one device (the slices are summed in order); the split, and
// so the rounding, depends on the device's SM count.
void gemm(const float* A, const float* B, float* C, const float* bias, int M, int N, int K, bool trans_a,
          bool trans_b, float alpha, float beta, bool relu, cudaStream_t stream, int version = 0,
          float* workspace = nullptr, long long workspace_floats = 0, int splits = 0);
// Which gemm_kernel<n> gemm(..., version) runs for an M x N output; throws
// std::invalid_argument exactly where gemm would refuse `version`.
int gemm_version(int M, int N, int version = 0);

// db[c] = sum_r dy[r, c] for a [rows, cols] matrix, summed in row order (deterministic).
void bias_grad(const float* dy, float* db, long long rows, int cols, cudaStream_t stream);

}  // namespace ccn
