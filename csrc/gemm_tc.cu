// Launcher for gemm_tc.cuh (see gemm_tc.h for the contract).
#include "gemm_tc.cuh"
#include "gemm_tc.h"

namespace ccn {
namespace {

using GemmTcKernel = void (*)(const float*, const float*, float*, const float*, int, int, int, float, float, bool);

template <int BM, int P, bool VEC>
GemmTcKernel pick_layout(bool trans_a, bool trans_b) {
  return trans_a ? (trans_b ? gemm_tc_kernel1<BM, true, true, P, VEC> : gemm_tc_kernel1<BM, true, false, P, VEC>)
                 : (trans_b ? gemm_tc_kernel1<BM, false, true, P, VEC> : gemm_tc_kernel1<BM, false, false, P, VEC>);
}

template <int BM, bool VEC>
GemmTcKernel pick_precision(int precision, bool trans_a, bool trans_b) {
  switch (precision) {
    case kGemmTcTF32: return pick_layout<BM, kGemmTcTF32, VEC>(trans_a, trans_b);
    case kGemmTc3xTF32: return pick_layout<BM, kGemmTc3xTF32, VEC>(trans_a, trans_b);
    default: return pick_layout<BM, kGemmTcBF16, VEC>(trans_a, trans_b);
  }
}

}  // namespace

void gemm_tc(const float* A, const float* B, float* C, const float* bias, int M, int N, int K, bool trans_a,
             bool trans_b, float alpha, float beta, bool relu, int precision, cudaStream_t stream) {
  CCN_REQUIRE(M >= 1 && N >= 1 && K >= 1, "M, N, K must be >= 1");
  CCN_REQUIRE_EXTENT(M, "M");
  CCN_REQUIRE_EXTENT(N, "N");
  CCN_REQUIRE_EXTENT(K, "K");  // the tile origins step 16 (K) and 64 (M, N) past the extents
  CCN_REQUIRE(A && B && C, "null matrix pointer");
  CCN_REQUIRE_DISJOINT(C, (long long)M * N, A, (long long)M * K);
  CCN_REQUIRE_DISJOINT(C, (long long)M * N, B, (long long)K * N);
  CCN_REQUIRE_DISJOINT(C, (long long)M * N, bias, N);
  CCN_REQUIRE(precision == kGemmTcTF32 || precision == kGemmTc3xTF32 || precision == kGemmTcBF16,
              "precision must be 0 (tf32), 1 (3xtf32) or 2 (bf16)");
  // 16-byte copies need aligned bases and leading dimensions that keep every row aligned.
  bool vec = aligned16(A) && (trans_a ? M : K) % 4 == 0 && aligned16(B) && (trans_b ? K : N) % 4 == 0;
  // A small M (the FC layers at a small batch) takes the 16-row tile: 4x less padding.
  const int bm = M <= 16 ? 16 : 64;
  CCN_REQUIRE(ceil_div(M, bm) <= 65535u, "M too large for the grid's y dimension");
  GemmTcKernel k = bm == 16 ? (vec ? pick_precision<16, true>(precision, trans_a, trans_b)
                                   : pick_precision<16, false>(precision, trans_a, trans_b))
                            : (vec ? pick_precision<64, true>(precision, trans_a, trans_b)
                                   : pick_precision<64, false>(precision, trans_a, trans_b));
  size_t smem = gemm_tc_smem_floats(trans_a, trans_b, bm) * sizeof(float);
  dim3 grid(ceil_div(N, kGemmTcBN), ceil_div(M, bm));
  CCN_LAUNCH(k, grid, kGemmTcThreads, smem, stream)(A, B, C, bias, M, N, K, alpha, beta, relu);
  CCN_CHECK_LAUNCH("gemm_tc_kernel1");
}

}  // namespace ccn
