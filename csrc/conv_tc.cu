// Launchers of the tensor-core convolutions (contract in conv_tc.h).
#include "conv_tc.h"
#include "conv_tc_dgrad.cuh"
#include "conv_tc_fwd.cuh"

namespace ccn {
namespace {

void check_precision(int precision) {
  CCN_REQUIRE(precision == kGemmTcTF32 || precision == kGemmTc3xTF32 || precision == kGemmTcBF16,
              "precision must be 0 (tf32), 1 (3xtf32) or 2 (bf16)");
}

// The kernel for a run-time precision and copy width (template arguments keep the main
// loops free of both branches).
template <template <int, bool> class Pick>
auto pick(int precision, bool vec) {
  switch (precision) {
    case kGemmTcTF32: return vec ? Pick<kGemmTcTF32, true>::f : Pick<kGemmTcTF32, false>::f;
    case kGemmTc3xTF32: return vec ? Pick<kGemmTc3xTF32, true>::f : Pick<kGemmTc3xTF32, false>::f;
    default: return vec ? Pick<kGemmTcBF16, true>::f : Pick<kGemmTcBF16, false>::f;
  }
}
template <int P, bool V>
struct FwdKernel {
  static constexpr auto f = conv_tc_fwd_kernel1<P, V>;
};
template <int P, bool V>
struct DgradKernel {
  static constexpr auto f = conv_tc_dgrad_kernel1<P, V>;
};

}  // namespace

void conv2d_tc(const float* x, const float* w, const float* b, float* y, const ConvShape& g, bool relu,
               int precision, cudaStream_t stream) {
  check_precision(precision);
  CCN_REQUIRE(x && w && y, "null tensor pointer");
  using T = ConvTcFwdTile<kGemmTcTF32>;  // the tile and shared memory are the same for every precision
  // 16-byte copies: every quad of taps is 4 channels of one pixel, at aligned addresses.
  const bool vec = g.cg % 4 == 0 && aligned16(x) && aligned16(w);
  dim3 grid(ceil_div(g.npq, T::BM), ceil_div(g.kg, T::BN), g.groups);
  CCN_LAUNCH(pick<FwdKernel>(precision, vec), grid, kConvTcThreads, T::SMEM_FLOATS * sizeof(float), stream)(
      x, w, b, y, g, relu);
  CCN_CHECK_LAUNCH("conv_tc_fwd_kernel1");
}

void conv2d_dgrad_tc(const float* dy, const float* w, float* dx, const ConvShape& g, int precision,
                     cudaStream_t stream) {
  check_precision(precision);
  CCN_REQUIRE(dy && w && dx, "null tensor pointer");
  using T = ConvTcDgradTile<kGemmTcTF32>;
  const bool vec = g.kg % 4 == 0 && g.cg % 4 == 0 && aligned16(dy) && aligned16(w);
  CCN_REQUIRE((long long)g.rs * g.kg < (1LL << 31) - 64, "R*S*K/groups too large for 32-bit GEMM indices");
  dim3 grid(ceil_div(g.nhw, T::BM), ceil_div(g.cg, T::BN), g.groups);
  CCN_LAUNCH(pick<DgradKernel>(precision, vec), grid, kConvTcDgradThreads, T::SMEM_FLOATS * sizeof(float),
             stream)(dy, w, dx, g);
  CCN_CHECK_LAUNCH("conv_tc_dgrad_kernel1");
}

}  // namespace ccn
