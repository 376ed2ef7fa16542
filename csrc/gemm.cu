// Launchers for gemm.cuh (see ops.h for the contract).
#include "gemm.cuh"
#include "gemm.h"

namespace ccn {

int gemm_version(int M, int N, int version) {
  CCN_REQUIRE(version >= 0 && version <= 2, "version must be 0 (the launcher picks), 1 or 2");
  if (version != 0) return version;
  return M >= kGemm2BM && N >= kGemm2BN ? 2 : 1;
}

void gemm(const float* A, const float* B, float* C, const float* bias, int M, int N, int K, bool trans_a,
          bool trans_b, float alpha, float beta, bool relu, cudaStream_t stream, int version) {
  CCN_REQUIRE(M >= 1 && N >= 1 && K >= 1, "M, N, K must be >= 1");
  CCN_REQUIRE_EXTENT(M, "M");
  CCN_REQUIRE_EXTENT(N, "N");
  CCN_REQUIRE_EXTENT(K, "K");  // the K loop steps 16 past K before it stops
  CCN_REQUIRE(A && B && C, "null matrix pointer");
  if (gemm_version(M, N, version) == 2) {
    // Large matrices (the FC layers at batch 128): the 8 x 8-per-thread kernel.
    bool vec_a = aligned16(A) && (trans_a ? M : K) % 4 == 0;
    bool vec_b = aligned16(B) && (trans_b ? K : N) % 4 == 0;
    bool vec_c = aligned16(C) && N % 4 == 0;
    using Kernel2 = void (*)(const float*, const float*, float*, const float*, int, int, int, float, float, bool, bool,
                             bool, bool);
    Kernel2 k = trans_a ? (trans_b ? gemm_kernel2<true, true> : gemm_kernel2<true, false>)
                        : (trans_b ? gemm_kernel2<false, true> : gemm_kernel2<false, false>);
    CCN_REQUIRE(ceil_div(M, kGemm2BM) <= 65535u, "M too large for the grid's y dimension");
    dim3 grid(ceil_div(N, kGemm2BN), ceil_div(M, kGemm2BM));
    CCN_LAUNCH(k, grid, dim3(16, 16), kGemm2SmemFloats * sizeof(float), stream)(A, B, C, bias, M, N, K, alpha, beta,
                                                                               relu, vec_a, vec_b, vec_c);
    CCN_CHECK_LAUNCH("gemm_kernel2");
    return;
  }
  CCN_REQUIRE(ceil_div(M, kGemmBM) <= 65535u, "M too large for the grid's y dimension");
  using Kernel = void (*)(const float*, const float*, float*, const float*, int, int, int, float, float, bool);
  Kernel k = trans_a ? (trans_b ? gemm_kernel1<true, true> : gemm_kernel1<true, false>)
                     : (trans_b ? gemm_kernel1<false, true> : gemm_kernel1<false, false>);
  dim3 grid(ceil_div(N, kGemmBN), ceil_div(M, kGemmBM));
  dim3 block(16, 16);
  CCN_LAUNCH(k, grid, block, kGemmSmemFloats * sizeof(float), stream)(A, B, C, bias, M, N, K, alpha, beta, relu);
  CCN_CHECK_LAUNCH("gemm_kernel1");
}

void bias_grad(const float* dy, float* db, long long rows, int cols, cudaStream_t stream) {
  CCN_REQUIRE(rows >= 1 && cols >= 1, "rows and cols must be >= 1");
  CCN_REQUIRE_EXTENT(cols, "cols");
  CCN_REQUIRE(dy && db, "null pointer");
  CCN_LAUNCH(bias_grad_kernel1, ceil_div(cols, 128), 128, 0, stream)(dy, db, rows, cols);
  CCN_CHECK_LAUNCH("bias_grad_kernel1");
}

}  // namespace ccn
