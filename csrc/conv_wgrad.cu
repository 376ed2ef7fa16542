// Launcher of conv_wgrad.cuh (contract in conv.h and ops.h): dw and db, split over N*P*Q.
#include <algorithm>
#include <string>

#include "conv.h"
#include "conv_wgrad.cuh"

namespace ccn {

namespace {

// The split policy. It depends on the shape only (never on the device), so the emulator
// and every GPU add the same partial sums in the same order.
//   dw: enough chunks that the grid has about kTargetBlocks blocks (a few waves of 64 x 64
//       tiles on a 132-SM H100), at most kMaxChunks (the workspace is chunks x |dw|), and
//       no chunk shorter than kMinChunkRows (a tiny reduction is not worth splitting).
//   db: chunks of at least kMinBiasChunkRows rows, about kTargetBlocks blocks in all.
constexpr long long kTargetBlocks = 1024;
constexpr long long kMaxChunks = 64;
constexpr long long kMinChunkRows = 256;
constexpr long long kMinBiasChunkRows = 256;
constexpr long long kMaxBiasChunks = 1024;

long long round_up(long long v, long long m) { return (v + m - 1) / m * m; }
long long div_up(long long a, long long b) { return (a + b - 1) / b; }

}  // namespace

WgradPlan conv2d_wgrad_plan(const ConvShape& g, int chunk_rows) {
  CCN_REQUIRE(chunk_rows >= 0, "chunk_rows must be >= 0 (0: automatic)");
  const long long rows = g.npq;
  WgradPlan plan{};
  long long cr, bcr;
  if (chunk_rows > 0) {
    cr = bcr = round_up(chunk_rows, kConvBK);
  } else {
    long long tiles = (long long)div_up(g.kg, kConvBM) * div_up(g.rscg, kConvBN) * g.groups;
    long long chunks = div_up(kTargetBlocks, tiles);
    chunks = std::min(chunks, kMaxChunks);
    chunks = std::min(chunks, div_up(rows, kMinChunkRows));
    chunks = std::max(chunks, 1LL);
    cr = round_up(div_up(rows, chunks), kConvBK);
    long long col_blocks = div_up(g.k, kConvBiasThreads);
    long long bchunks = std::min(div_up(rows, kMinBiasChunkRows), std::max(1LL, kTargetBlocks / col_blocks));
    bchunks = std::max(1LL, std::min(bchunks, kMaxBiasChunks));
    bcr = div_up(rows, bchunks);
  }
  cr = std::min(cr, round_up(rows, kConvBK));
  bcr = std::min(bcr, rows);
  plan.chunk_rows = static_cast<int>(cr);
  plan.chunks = static_cast<int>(div_up(rows, cr));
  plan.bias_chunk_rows = static_cast<int>(bcr);
  plan.bias_chunks = static_cast<int>(div_up(rows, bcr));
  CCN_REQUIRE((long long)plan.chunks * g.groups <= 65535, "too many wgrad chunks for the grid's z dimension");
  CCN_REQUIRE(plan.bias_chunks <= 65535, "too many bias-gradient chunks for the grid's y dimension");
  const long long dw_floats = (long long)g.k * g.rscg;
  plan.workspace_floats = (plan.chunks > 1 ? plan.chunks * dw_floats : 0) +
                          (plan.bias_chunks > 1 ? (long long)plan.bias_chunks * g.k : 0);
  return plan;
}

void conv2d_wgrad(const float* x, const float* dy, float* dw, float* db, float* workspace,
                long long workspace_floats, const ConvShape& g, int chunk_rows, cudaStream_t stream) {
  CCN_REQUIRE(x && dy && dw, "null tensor pointer");
  CCN_REQUIRE(g.n >= 1 && g.p >= 1 && g.q >= 1 && g.cg * g.groups == g.c && g.kg * g.groups == g.k,
              "shape not made by make_conv_shape");
  CCN_REQUIRE(ceil_div(g.kg, kConvBM) <= 65535u, "K/groups too large for the grid's y dimension");
  const WgradPlan plan = conv2d_wgrad_plan(g, chunk_rows);
  CCN_REQUIRE(workspace_floats >= plan.workspace_floats,
              "workspace too small: " + std::to_string(workspace_floats) + " floats given, " +
                  std::to_string(plan.workspace_floats) + " needed (conv2d_wgrad_plan)");
  CCN_REQUIRE(plan.workspace_floats == 0 || workspace, "null workspace");
  const long long dw_floats = (long long)g.k * g.rscg;
  float* dw_parts = plan.chunks > 1 ? workspace : dw;
  float* db_parts = plan.bias_chunks > 1 ? workspace + (plan.chunks > 1 ? plan.chunks * dw_floats : 0) : db;

  dim3 grid(ceil_div(g.rscg, kConvBN), ceil_div(g.kg, kConvBM), plan.chunks * g.groups);
  CCN_LAUNCH(conv_wgrad_kernel1, grid, dim3(16, 16), kConvSmemFloats * sizeof(float), stream)(
      x, dy, dw_parts, g, plan.chunk_rows, dw_floats);
  CCN_CHECK_LAUNCH("conv_wgrad_kernel1");
  if (plan.chunks > 1) {
    unsigned blocks = static_cast<unsigned>(std::min<long long>(ceil_div(dw_floats, 256), 1056));
    CCN_LAUNCH(conv_sum_partials_kernel1, blocks, 256, 0, stream)(dw_parts, dw, plan.chunks, dw_floats);
    CCN_CHECK_LAUNCH("conv_sum_partials_kernel1 (dw)");
  }
  if (db) {
    dim3 bgrid(ceil_div(g.k, kConvBiasThreads), plan.bias_chunks);
    CCN_LAUNCH(conv_bias_grad_kernel1, bgrid, kConvBiasThreads, 0, stream)(dy, db_parts, g.npq, g.k,
                                                                           plan.bias_chunk_rows);
    CCN_CHECK_LAUNCH("conv_bias_grad_kernel1");
    if (plan.bias_chunks > 1) {
      CCN_LAUNCH(conv_sum_partials_kernel1, ceil_div(g.k, 256), 256, 0, stream)(db_parts, db, plan.bias_chunks,
                                                                                (long long)g.k);
      CCN_CHECK_LAUNCH("conv_sum_partials_kernel1 (db)");
    }
  }
}

}  // namespace ccn
