// Launcher of conv_wgrad.cuh (contract in conv.h and ops.h): dw and db, split over N*P*Q.
#include <algorithm>
#include <string>

#include "conv.h"
#include "conv_wgrad.cuh"

namespace ccn {

namespace {

// The split policy: a function of the shape (and a forced chunk_rows) only, never of the
// device, so the emulator and every GPU add the same partial sums in the same order and dw
// is bit-identical everywhere. It is sized for the card the project targets, an H100
// (kPlanSMs SMs): for the tile of the kernels the shape can run (where K/groups % 4 == 0 the
// 96 x 128 of kernel4 and kernel5 if conv_wgrad_wide_tile, else the 128 x 128 of kernel2 and
// kernel3; kernel1's 64 x 64 otherwise; a misaligned call that
// falls back to kernel1 keeps the 128-tile plan, so the bits do not depend on pointer
// alignment either), it tries every whole number of waves W and takes the chunk
// count that fits W waves with the least predicted time:
//   cost(W) = waves(W) * (K steps per chunk + kBlockOverheadSteps)
//             + chunks * |dw| * kReduceStepsPerFloat   (the partials written and re-read)
// in units of one K step of a full SM. On a card with another SM count the plan still runs
// (the grid is what it is), only with a partial last wave.
//   db: chunks of at least kMinBiasChunkRows rows, about kBiasTargetBlocks blocks in all.
constexpr long long kPlanSMs = 132;           // H100 SXM
constexpr long long kMinChunkSteps = 16;      // chunks <= ceil(K steps / 16): mostly >= 256 rows
constexpr long long kMaxChunks = 128;         // the workspace is chunks x |dw|
constexpr long long kMaxWaves = 16;
constexpr double kBlockOverheadSteps = 4.0;   // pipeline fill, epilogue stores
constexpr long long kMinBiasChunkRows = 256;
constexpr long long kBiasTargetBlocks = 1024;
constexpr long long kMaxBiasChunks = 1024;

struct PlanTile {
  int bm, bn, blocks_per_sm;  // resident blocks per SM on sm_90 (csrc/RESOURCES.md)
  double reduce_steps_per_float;  // 8 bytes of partials per dw float, in K steps of a full SM
};
// One K step of a full SM: blocks_per_sm * BM * BN * 16 FMAs at 128 FMA lanes per SM per
// clock; the partials move at ~2.7 TB/s over 132 SMs at 1.98 GHz (~10 bytes per SM-clock).
//   kernel2/3: 2 * 128 * 128 * 16 / 128 = 4096 clocks; 8 / 10 / 4096 ~ 2e-4 steps per float.
//   kernel1: 5 * 64 * 64 * 16 / 128 = 2560 clocks;  8 / 10 / 2560 ~ 3e-4.
//   kernel4/5: 2 * 96 * 128 * 16 / 128 = 3072 clocks; 8 / 10 / 3072 ~ 2.6e-4.
constexpr PlanTile kPlanTile2{kWgrad2BM, kWgrad2BN, 2, 2e-4};
constexpr PlanTile kPlanTile4{kWgrad4BM, kWgrad2BN, 2, 2.6e-4};
constexpr PlanTile kPlanTile1{kConvBM, kConvBN, 5, 3e-4};

// K/groups a whole number of 96-filter tiles but not of 128-filter ones (AlexNet conv1: 96,
// conv4: 192): the 96 x 128 tile of kernel4/5 does no padded work where the 128 x 128 one
// wastes a quarter, at 48 instead of 64 FMAs per 4 shared reads.
bool conv_wgrad_wide_tile(const ConvShape& g) { return g.kg % kWgrad4BM == 0 && g.kg % kWgrad2BM != 0; }

long long round_up(long long v, long long m) { return (v + m - 1) / m * m; }
long long div_up(long long a, long long b) { return (a + b - 1) / b; }

long long auto_chunk_rows(const ConvShape& g) {
  const PlanTile& pt = g.kg % 4 == 0 ? (conv_wgrad_wide_tile(g) ? kPlanTile4 : kPlanTile2) : kPlanTile1;
  const long long tiles = div_up(g.kg, pt.bm) * div_up(g.rscg, pt.bn) * g.groups;
  const long long steps = div_up(g.npq, kConvBK);
  const long long slots = kPlanSMs * pt.blocks_per_sm;
  const double dw_floats = (double)g.k * g.rscg;
  long long best_spc = steps;  // one chunk: the whole reduction in each block
  double best = 1e300;
  for (long long waves = div_up(tiles, slots); waves <= div_up(tiles, slots) + kMaxWaves; ++waves) {
    long long want = std::max(1LL, waves * slots / tiles);
    want = std::min({want, kMaxChunks, div_up(steps, kMinChunkSteps)});
    const long long spc = div_up(steps, want), chunks = div_up(steps, spc);
    const double cost = (double)div_up(chunks * tiles, slots) * ((double)spc + kBlockOverheadSteps) +
                        (chunks > 1 ? (double)chunks * dw_floats * pt.reduce_steps_per_float / kPlanSMs : 0.0);
    if (cost < best) {
      best = cost;
      best_spc = spc;
    }
  }
  return best_spc * kConvBK;
}

}  // namespace

bool conv_wgrad_kernel2_applies(const float* x, const float* dy, const ConvShape& g) {
  return g.cg % 4 == 0 && g.kg % 4 == 0 && aligned16(x) && aligned16(dy);
}

bool conv_wgrad_kernel3_applies(const float* dy, const ConvShape& g) { return g.kg % 4 == 0 && aligned16(dy); }

WgradPlan conv2d_wgrad_plan(const ConvShape& g, int chunk_rows) {
  CCN_REQUIRE(chunk_rows >= 0, "chunk_rows must be >= 0 (0: automatic)");
  const long long rows = g.npq;
  WgradPlan plan{};
  long long cr, bcr;
  if (chunk_rows > 0) {
    cr = bcr = round_up(chunk_rows, kConvBK);
  } else {
    cr = auto_chunk_rows(g);
    long long col_blocks = div_up(g.k, kConvBiasThreads);
    long long bchunks =
        std::min(div_up(rows, kMinBiasChunkRows), std::max(1LL, kBiasTargetBlocks / col_blocks));
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
  // chunks x |dw| passes 2^63 for extreme (legal) shapes: refused instead of wrapping into a
  // small size that the launcher's workspace check would then accept.
  const long long dw_floats = (long long)g.k * g.rscg;  // < 2^62: K and R*S*C/groups < 2^31
  plan.workspace_floats =
      (plan.chunks > 1 ? checked_floats(plan.chunks, dw_floats, "conv2d_wgrad_plan: the chunks' dw workspace") : 0) +
      (plan.bias_chunks > 1 ? (long long)plan.bias_chunks * g.k : 0);
  CCN_REQUIRE(plan.workspace_floats <= kMaxBufferFloats, "the wgrad workspace is larger than 2^60 floats");
  return plan;
}

int conv2d_wgrad_version(const float* x, const float* dy, const ConvShape& g, int version) {
  CCN_REQUIRE(version >= 0 && version <= 5, "version must be 0 (the launcher picks), 1, 2, 3, 4 or 5");
  const bool v2 = conv_wgrad_kernel2_applies(x, dy, g), v3 = conv_wgrad_kernel3_applies(dy, g);
  // kernel4/5 are kernel2/3 with the 96-filter tile: they run the same shapes.
  CCN_REQUIRE((version != 2 && version != 4) || v2,
              "conv_wgrad_kernel" + std::to_string(version) +
                  " needs C/groups % 4 == 0, K/groups % 4 == 0 and 16-byte aligned x and dy");
  CCN_REQUIRE((version != 3 && version != 5) || v3,
              "conv_wgrad_kernel" + std::to_string(version) + " needs K/groups % 4 == 0 and a 16-byte aligned dy");
  if (version != 0) return version;
  // kernel4 replaces kernel2 where the 96-filter tile wastes no rows (conv4). kernel5 is only
  // run when forced: its main loop (73.5 % FMA share on sm_90, against kernel3's 79.1 %) is
  // below the 75 % floor of the SASS gate, though the performance model predicts it faster
  // on conv1 (no padded filter rows); bench/kernel_bench.py times both on a GPU.
  if (v2) return conv_wgrad_wide_tile(g) ? 4 : 2;
  return v3 ? 3 : 1;
}

void conv2d_wgrad(const float* x, const float* dy, float* dw, float* db, float* workspace,
                  long long workspace_floats, const ConvShape& g, int chunk_rows, cudaStream_t stream, int version) {
  CCN_REQUIRE(x && dy && dw, "null tensor pointer");
  conv_require_shape(g);
  CCN_REQUIRE(ceil_div(g.kg, kConvBM) <= 65535u, "K/groups too large for the grid's y dimension");
  const int kernel = conv2d_wgrad_version(x, dy, g, version);
  const WgradPlan plan = conv2d_wgrad_plan(g, chunk_rows);
  conv_check_workspace(workspace, workspace_floats, plan.workspace_floats, "conv2d_wgrad_plan");
  const long long dw_floats = (long long)g.k * g.rscg;
  conv_wgrad_require_disjoint(x, dy, dw, db, workspace, plan.workspace_floats, g);
  float* dw_parts = plan.chunks > 1 ? workspace : dw;
  float* db_parts = plan.bias_chunks > 1 ? workspace + (plan.chunks > 1 ? plan.chunks * dw_floats : 0) : db;

  if (kernel >= 2) {
    const bool wide = kernel >= 4;
    const int bm = wide ? kWgrad4BM : kWgrad2BM;
    dim3 grid(ceil_div(g.rscg, kWgrad2BN), ceil_div(g.kg, bm), plan.chunks * g.groups);
    auto fn = kernel == 2 ? conv_wgrad_kernel2
              : kernel == 3 ? conv_wgrad_kernel3
              : kernel == 4 ? conv_wgrad_kernel4
                            : conv_wgrad_kernel5;
    const size_t smem = (wide ? kWgrad4SmemFloats : kWgrad2SmemFloats) * sizeof(float);
    CCN_LAUNCH(fn, grid, dim3(16, 16), smem, stream)(x, dy, dw_parts, g, plan.chunk_rows, dw_floats);
    CCN_CHECK_LAUNCH(kernel == 2   ? "conv_wgrad_kernel2"
                     : kernel == 3 ? "conv_wgrad_kernel3"
                     : kernel == 4 ? "conv_wgrad_kernel4"
                                   : "conv_wgrad_kernel5");
  } else {
    dim3 grid(ceil_div(g.rscg, kConvBN), ceil_div(g.kg, kConvBM), plan.chunks * g.groups);
    CCN_LAUNCH(conv_wgrad_kernel1, grid, dim3(16, 16), kConvSmemFloats * sizeof(float), stream)(
        x, dy, dw_parts, g, plan.chunk_rows, dw_floats);
    CCN_CHECK_LAUNCH("conv_wgrad_kernel1");
  }
  if (plan.chunks > 1) conv_sum_chunks(dw_parts, dw, plan.chunks, dw_floats, stream);
  if (db) {
    conv_bias_grad_partials(dy, db_parts, g, plan.bias_chunk_rows, plan.bias_chunks, stream);
    if (plan.bias_chunks > 1) conv_sum_chunks(db_parts, db, plan.bias_chunks, g.k, stream);
  }
}

void conv_bias_grad_partials(const float* dy, float* out, const ConvShape& g, int chunk_rows, int chunks,
                             cudaStream_t stream) {
  CCN_LAUNCH(conv_bias_grad_kernel1, dim3(ceil_div(g.k, kConvBiasThreads), chunks), kConvBiasThreads, 0, stream)(
      dy, out, g.npq, g.k, chunk_rows);
  CCN_CHECK_LAUNCH("conv_bias_grad_kernel1");
}

void conv_sum_chunks(const float* parts, float* out, int chunks, long long count, cudaStream_t stream) {
  const unsigned blocks = static_cast<unsigned>(std::min<long long>(ceil_div(count, kConvSumThreads), kConvSumMaxBlocks));
  CCN_LAUNCH(conv_sum_partials_kernel1, blocks, kConvSumThreads, 0, stream)(parts, out, chunks, count);
  CCN_CHECK_LAUNCH("conv_sum_partials_kernel1");
}

void conv_check_workspace(const float* workspace, long long given, long long needed, const char* plan) {
  CCN_REQUIRE(given >= needed, "workspace too small: " + std::to_string(given) + " floats given, " +
                                   std::to_string(needed) + " needed (" + plan + ")");
  CCN_REQUIRE(needed == 0 || workspace, "null workspace");
}

void conv_wgrad_require_disjoint(const float* x, const float* dy, const float* dw, const float* db,
                                 const float* workspace, long long ws, const ConvShape& g) {
  const long long dw_floats = (long long)g.k * g.rscg, x_floats = conv_x_floats(g), dy_floats = conv_y_floats(g);
  CCN_REQUIRE_DISJOINT(dw, dw_floats, x, x_floats);
  CCN_REQUIRE_DISJOINT(dw, dw_floats, dy, dy_floats);
  CCN_REQUIRE_DISJOINT(db, g.k, x, x_floats);
  CCN_REQUIRE_DISJOINT(db, g.k, dy, dy_floats);
  CCN_REQUIRE_DISJOINT(db, g.k, dw, dw_floats);
  CCN_REQUIRE_DISJOINT(workspace, ws, x, x_floats);
  CCN_REQUIRE_DISJOINT(workspace, ws, dy, dy_floats);
  CCN_REQUIRE_DISJOINT(workspace, ws, dw, dw_floats);
  CCN_REQUIRE_DISJOINT(workspace, ws, db, g.k);
}

}  // namespace ccn
