// Launchers of gemm.cuh: the FC layers' GEMM and the bias gradient (contract in ops.h).
#pragma once

#include "common.h"

namespace ccn {

// C[M,N] = alpha * op(A) op(B) + beta * C + bias[n], then ReLU if `relu`.
// op(A) is M x K: A is stored [M,K] (trans_a = false) or [K,M] (trans_a = true).
// op(B) is K x N: B is stored [K,N] (trans_b = false) or [N,K] (trans_b = true).
// beta == 0 never reads C (it may hold garbage); bias may be null.
// version: 0 lets the launcher pick (gemm_kernel2 when M and N are >= 128, else
// gemm_kernel1); 1 or 2 forces gemm_kernel<version> (both zero-fill ragged edges, so either
// runs any size); any other value throws.
void gemm(const float* A, const float* B, float* C, const float* bias, int M, int N, int K, bool trans_a,
          bool trans_b, float alpha, float beta, bool relu, cudaStream_t stream, int version = 0);
// Which gemm_kernel<n> gemm(..., version) runs for an M x N output; throws
// std::invalid_argument exactly where gemm would refuse `version`.
int gemm_version(int M, int N, int version = 0);

// db[c] = sum_r dy[r, c] for a [rows, cols] matrix, summed in row order (deterministic).
void bias_grad(const float* dy, float* db, long long rows, int cols, cudaStream_t stream);

}  // namespace ccn
