// Launchers of the tensor-core convolutions (contract in conv_tc.h).
#include <algorithm>
#include <string>

#include "conv_tc.h"
#include "conv_tc_dgrad.cuh"
#include "conv_tc_fwd.cuh"
#include "conv_tc_wgrad.cuh"

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
template <int P, bool V>
struct WgradKernel {
  static constexpr auto f = conv_tc_wgrad_kernel1<P, V>;
};

// The wgrad split policy: enough chunks that the grid has about kTargetBlocks blocks (a few
// waves of 64 x 128 tiles at 4 blocks per SM on a 132-SM H100), at most kMaxChunks (the
// workspace is chunks x |dw|), no chunk shorter than kMinChunkRows.
constexpr long long kTargetBlocks = 1024, kMaxChunks = 64, kMinChunkRows = 256;
long long div_up(long long a, long long b) { return (a + b - 1) / b; }

}  // namespace

void conv2d_tc(const float* x, const float* w, const float* b, float* y, const ConvShape& g, bool relu,
               int precision, cudaStream_t stream) {
  check_precision(precision);
  CCN_REQUIRE(x && w && y, "null tensor pointer");
  // 16-byte copies: every quad of taps is 4 channels of one pixel, at aligned addresses.
  const bool vec = g.cg % 4 == 0 && aligned16(x) && aligned16(w);
  // The block tile: 128 x 64, or 64 x 64 for 3xtf32 with 16-byte copies (conv_tc_fwd.cuh).
  using Wide = ConvTcFwdTile<kGemmTcTF32, true>;
  using Narrow = ConvTcFwdTile<kGemmTc3xTF32, true>;
  const bool narrow = precision == kGemmTc3xTF32 && vec;
  const int bm = narrow ? Narrow::BM : Wide::BM;
  const size_t smem = (narrow ? Narrow::SMEM_FLOATS : Wide::SMEM_FLOATS) * sizeof(float);
  // The gather's tap offset (r*W + s)*C + c from the receptive field's corner is 32-bit
  // (r runs up to a K step past the filter: the walker is not stopped at Kgemm).
  CCN_REQUIRE((long long)(g.r + kTcBK + 1) * g.w * g.c < (1LL << 31), "R*W*C too large for 32-bit tap offsets");
  dim3 grid(ceil_div(g.npq, bm), ceil_div(g.kg, Wide::BN), g.groups);
  CCN_LAUNCH(pick<FwdKernel>(precision, vec), grid, kConvTcThreads, smem, stream)(x, w, b, y, g, relu);
  CCN_CHECK_LAUNCH("conv_tc_fwd_kernel1");
}

void conv2d_dgrad_tc(const float* dy, const float* w, float* dx, const ConvShape& g, int precision,
                     cudaStream_t stream) {
  check_precision(precision);
  CCN_REQUIRE(dy && w && dx, "null tensor pointer");
  using T = ConvTcDgradTile<kGemmTcTF32>;
  const bool vec = g.kg % 4 == 0 && g.cg % 4 == 0 && aligned16(dy) && aligned16(w);
  CCN_REQUIRE((long long)g.rs * g.kg < (1LL << 31) - 64, "R*S*K/groups too large for 32-bit GEMM indices");
  // The B gather's offset j*R*S*C/g + (r*S + s)*C/g in the group's filters is 32-bit (the
  // walker runs up to a K step past the last tap).
  CCN_REQUIRE((long long)(g.kg + kTcBK + 1) * g.rscg < (1LL << 31),
              "K/groups * R*S*C/groups too large for 32-bit filter offsets");
  dim3 grid(ceil_div(g.nhw, T::BM), ceil_div(g.cg, T::BN), g.groups);
  CCN_LAUNCH(pick<DgradKernel>(precision, vec), grid, kConvTcDgradThreads, T::SMEM_FLOATS * sizeof(float),
             stream)(dy, w, dx, g);
  CCN_CHECK_LAUNCH("conv_tc_dgrad_kernel1");
}

WgradTcPlan conv2d_wgrad_tc_plan(const ConvShape& g, int chunk_rows) {
  CCN_REQUIRE(chunk_rows >= 0, "chunk_rows must be >= 0 (0: automatic)");
  using T = ConvTcWgradTile<kGemmTcTF32>;
  const long long rows = g.npq;
  long long cr;
  if (chunk_rows > 0) {
    cr = div_up(chunk_rows, kTcBK) * kTcBK;
  } else {
    long long tiles = div_up(g.kg, T::BM) * div_up(g.rscg, T::BN) * g.groups;
    long long chunks = std::max(1LL, std::min({div_up(kTargetBlocks, tiles), kMaxChunks, div_up(rows, kMinChunkRows)}));
    cr = div_up(div_up(rows, chunks), kTcBK) * kTcBK;
  }
  cr = std::min(cr, div_up(rows, kTcBK) * kTcBK);
  WgradTcPlan plan{};
  plan.chunk_rows = static_cast<int>(cr);
  plan.chunks = static_cast<int>(div_up(rows, cr));
  CCN_REQUIRE((long long)plan.chunks * g.groups <= 65535, "too many wgrad chunks for the grid's z dimension");
  CCN_REQUIRE(plan.chunks <= 65535, "too many bias-gradient chunks for the grid's y dimension");
  plan.workspace_floats = plan.chunks > 1 ? plan.chunks * ((long long)g.k * g.rscg + g.k) : 0;
  return plan;
}

void conv2d_wgrad_tc(const float* x, const float* dy, float* dw, float* db, float* workspace,
                     long long workspace_floats, const ConvShape& g, int chunk_rows, int precision,
                     cudaStream_t stream) {
  check_precision(precision);
  CCN_REQUIRE(x && dy && dw, "null tensor pointer");
  using T = ConvTcWgradTile<kGemmTcTF32>;
  CCN_REQUIRE(ceil_div(g.kg, T::BM) <= 65535u, "K/groups too large for the grid's y dimension");
  const WgradTcPlan plan = conv2d_wgrad_tc_plan(g, chunk_rows);
  CCN_REQUIRE(workspace_floats >= plan.workspace_floats,
              "workspace too small: " + std::to_string(workspace_floats) + " floats given, " +
                  std::to_string(plan.workspace_floats) + " needed (conv2d_wgrad_tc_plan)");
  CCN_REQUIRE(plan.workspace_floats == 0 || workspace, "null workspace");
  const long long dw_floats = (long long)g.k * g.rscg;
  const bool split = plan.chunks > 1;
  float* dw_parts = split ? workspace : dw;
  float* db_parts = split ? workspace + plan.chunks * dw_floats : db;
  const bool vec = g.kg % 4 == 0 && g.cg % 4 == 0 && aligned16(x) && aligned16(dy);
  dim3 grid(ceil_div(g.rscg, T::BN), ceil_div(g.kg, T::BM), plan.chunks * g.groups);
  CCN_LAUNCH(pick<WgradKernel>(precision, vec), grid, kConvTcWgradThreads, T::SMEM_FLOATS * sizeof(float),
             stream)(x, dy, dw_parts, g, plan.chunk_rows, dw_floats);
  CCN_CHECK_LAUNCH("conv_tc_wgrad_kernel1");
  if (db) {
    dim3 bgrid(ceil_div(g.k, kConvTcBiasThreads), plan.chunks);
    CCN_LAUNCH(conv_tc_bias_grad_kernel1, bgrid, kConvTcBiasThreads, 0, stream)(dy, db_parts, g.npq, g.k,
                                                                               plan.chunk_rows);
    CCN_CHECK_LAUNCH("conv_tc_bias_grad_kernel1");
  }
  if (split) {
    unsigned blocks = static_cast<unsigned>(std::min<long long>(ceil_div(dw_floats, 256), 1056));
    CCN_LAUNCH(conv_tc_sum_chunks_kernel1, blocks, 256, 0, stream)(dw_parts, dw, plan.chunks, dw_floats);
    CCN_CHECK_LAUNCH("conv_tc_sum_chunks_kernel1 (dw)");
    if (db) {
      CCN_LAUNCH(conv_tc_sum_chunks_kernel1, ceil_div(g.k, 256), 256, 0, stream)(db_parts, db, plan.chunks,
                                                                                 (long long)g.k);
      CCN_CHECK_LAUNCH("conv_tc_sum_chunks_kernel1 (db)");
    }
  }
}

}  // namespace ccn
