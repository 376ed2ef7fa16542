// Launcher of gemm_tc.cuh: the FC layers' GEMM on tensor cores (contract in ops.h).
#pragma once

#include "common.h"

namespace ccn {

// C[M,N] = alpha * op(A) op(B) + beta * C + bias[n], then ReLU if `relu`, as gemm()
// (gemm.h), with the operands rounded for the tensor cores: precision 0 = "tf32",
// 1 = "3xtf32", 2 = "bf16" (kGemmTc* in gemm_tc.cuh). A, B, C are float32 in memory.
// beta == 0 never reads C; bias may be null. Needs sm_80 or newer on a GPU.
void gemm_tc(const float* A, const float* B, float* C, const float* bias, int M, int N, int K, bool trans_a,
             bool trans_b, float alpha, float beta, bool relu, int precision, cudaStream_t stream);

}  // namespace ccn
