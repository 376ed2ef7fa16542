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
  conv_require_shape(g);
  CCN_REQUIRE(g.groups <= 65535, "groups too large for the grid's z dimension");
  CCN_REQUIRE(ceil_div(g.kg, ConvTcFwdTile<kGemmTcTF32, true>::BN) <= 65535u, "K/groups too large for the grid's y dimension");
  CCN_REQUIRE_DISJOINT(y, conv_y_floats(g), x, conv_x_floats(g));
  CCN_REQUIRE_DISJOINT(y, conv_y_floats(g), w, conv_w_floats(g));
  CCN_REQUIRE_DISJOINT(y, conv_y_floats(g), b, g.k);
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
  conv_require_shape(g);
  using T = ConvTcDgradTile<kGemmTcTF32>;
  CCN_REQUIRE(g.groups <= 65535, "groups too large for the grid's z dimension");
  CCN_REQUIRE(ceil_div(g.cg, T::BN) <= 65535u, "C/groups too large for the grid's y dimension");
  CCN_REQUIRE_DISJOINT(dx, conv_x_floats(g), dy, conv_y_floats(g));
  CCN_REQUIRE_DISJOINT(dx, conv_x_floats(g), w, conv_w_floats(g));
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
  // chunks x (|dw| + K) passes 2^63 for extreme (legal) shapes: refused, not wrapped.
  const long long per_chunk = (long long)g.k * g.rscg + g.k;  // < 2^62 + 2^31: K, R*S*C/groups < 2^31
  plan.workspace_floats =
      plan.chunks > 1 ? checked_floats(plan.chunks, per_chunk, "conv2d_wgrad_tc_plan: the chunks' workspace") : 0;
  return plan;
}

void conv2d_wgrad_tc(const float* x, const float* dy, float* dw, float* db, float* workspace,
                     long long workspace_floats, const ConvShape& g, int chunk_rows, int precision,
                     cudaStream_t stream) {
  check_precision(precision);
  CCN_REQUIRE(x && dy && dw, "null tensor pointer");
  conv_require_shape(g);
  using T = ConvTcWgradTile<kGemmTcTF32>;
  CCN_REQUIRE(ceil_div(g.kg, T::BM) <= 65535u, "K/groups too large for the grid's y dimension");
  const WgradTcPlan plan = conv2d_wgrad_tc_plan(g, chunk_rows);
  conv_check_workspace(workspace, workspace_floats, plan.workspace_floats, "conv2d_wgrad_tc_plan");
  const long long dw_floats = (long long)g.k * g.rscg;
  conv_wgrad_require_disjoint(x, dy, dw, db, workspace, plan.workspace_floats, g);
  const bool split = plan.chunks > 1;
  float* dw_parts = split ? workspace : dw;
  float* db_parts = split ? workspace + plan.chunks * dw_floats : db;
  const bool vec = g.kg % 4 == 0 && g.cg % 4 == 0 && aligned16(x) && aligned16(dy);
  dim3 grid(ceil_div(g.rscg, T::BN), ceil_div(g.kg, T::BM), plan.chunks * g.groups);
  CCN_LAUNCH(pick<WgradKernel>(precision, vec), grid, kConvTcWgradThreads, T::SMEM_FLOATS * sizeof(float),
             stream)(x, dy, dw_parts, g, plan.chunk_rows, dw_floats);
  CCN_CHECK_LAUNCH("conv_tc_wgrad_kernel1");
  if (db) conv_bias_grad_partials(dy, db_parts, g, plan.chunk_rows, plan.chunks, stream);
  if (split) {
    conv_sum_chunks(dw_parts, dw, plan.chunks, dw_floats, stream);
    if (db) conv_sum_chunks(db_parts, db, plan.chunks, g.k, stream);
  }
}

}  // namespace ccn
