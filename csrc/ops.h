// Host launchers of every kernel: the C++ API that bindings.cpp exposes to Python.
// Pointers are device pointers (host pointers under the emulator); sizes are explicit;
// every function checks its preconditions, launches on `stream` and returns without
// synchronising. Row-major everywhere; activations NHWC (DESIGN.md §3).
#pragma once

#include "common.h"

namespace ccn {

// C[M,N] = alpha * op(A) op(B) + beta * C + bias[n], then ReLU if `relu`.
// op(A) is M x K: A is stored [M,K] (trans_a = false) or [K,M] (trans_a = true).
// op(B) is K x N: B is stored [K,N] (trans_b = false) or [N,K] (trans_b = true).
// beta == 0 never reads C (it may hold garbage); bias may be null.
void gemm(const float* A, const float* B, float* C, const float* bias, int M, int N, int K, bool trans_a,
          bool trans_b, float alpha, float beta, bool relu, cudaStream_t stream);

// db[c] = sum_r dy[r, c] for a [rows, cols] matrix, summed in row order (deterministic).
void bias_grad(const float* dy, float* db, long long rows, int cols, cudaStream_t stream);

// y = max(x, 0) (NaN stays NaN); dx = dy where y > 0, else 0.
void relu_forward(const float* x, float* y, long long n, cudaStream_t stream);
void relu_backward(const float* y, const float* dy, float* dx, long long n, cudaStream_t stream);

}  // namespace ccn
