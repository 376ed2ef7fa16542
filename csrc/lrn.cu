// Launchers for lrn.cuh (see ops.h for the contract).
#include "lrn.cuh"
#include "lrn.h"

namespace ccn {

// The kernels' view: groups folded into the rows ([rows * groups, channels / groups]).
struct LrnShape {
  long long rows;
  int channels;
};

static LrnShape lrn_shape(long long rows, int channels, int groups) {
  CCN_REQUIRE(rows >= 0, "rows must be >= 0");
  CCN_REQUIRE(channels >= 1, "channels must be >= 1");
  CCN_REQUIRE_EXTENT(channels, "channels");
  CCN_REQUIRE(groups >= 1, "groups must be >= 1");
  CCN_REQUIRE(channels % groups == 0, "channels must be a multiple of groups");
  CCN_REQUIRE(rows <= 0x7fffffffffffffffLL / groups, "rows * groups overflows");
  return {rows * groups, channels / groups};
}

static LrnParams lrn_params(int group_channels, int before, int after, float alpha, float neg_beta, float k,
                            float coef) {
  // The caller clips the window to the group (cuda_convnet.shapes.lrn_window): a window
  // reaching past both ends of a group is the whole group, so before, after <= C/g - 1
  // lose nothing and keep the kernels' index sums in range.
  CCN_REQUIRE(before >= 0 && before < group_channels, "before must be in [0, channels / groups)");
  CCN_REQUIRE(after >= 0 && after < group_channels, "after must be in [0, channels / groups)");
  CCN_REQUIRE(k > 0.f, "k must be > 0");
  LrnParams a;
  a.channels = group_channels;
  a.before = before;
  a.after = after;
  a.alpha = alpha;
  a.neg_beta = neg_beta;
  a.k = k;
  a.coef = coef;
  a.three_quarters = neg_beta == -0.75f;
  a.relu_mask = false;
  return a;
}

// Kernel 2 runs one block per tile of rows, so its grid must fit 2^31 - 1 blocks; kernel 1
// is a grid-stride loop and takes any row count.
static bool kernel2_fits(long long rows, int channels) {
  if (channels > kLrnTileFloats) return false;
  const int rpb = kLrnTileFloats / channels;
  return (rows + rpb - 1) / rpb <= 0x7fffffffLL;
}

// rows and channels of the kernels' view (groups folded into the rows).
static int pick_version(long long rows, int channels, int version) {
  CCN_REQUIRE(version >= 0 && version <= 2, "version must be 0 (the launcher picks), 1 or 2");
  if (version == 2) CCN_REQUIRE(channels <= kLrnTileFloats, "lrn kernel2 needs channels / groups <= 2048");
  if (version == 0) version = kernel2_fits(rows, channels) ? 2 : 1;
  return version;
}

int lrn_version(long long rows, int channels, int groups, int version) {
  const LrnShape sh = lrn_shape(rows, channels, groups);
  return pick_version(sh.rows, sh.channels, version);
}

void lrn(const float* x, float* y, long long rows_, int channels_, int groups, int before, int after, float alpha,
         float neg_beta, float k, cudaStream_t stream, int version) {
  const LrnShape sh = lrn_shape(rows_, channels_, groups);
  const long long rows = sh.rows;
  const int channels = sh.channels;
  const LrnParams a = lrn_params(channels, before, after, alpha, neg_beta, k, 0.f);
  const int kernel = pick_version(rows, channels, version);
  if (rows == 0) return;
  CCN_REQUIRE(x && y, "null pointer");
  const long long total = checked_floats(rows, channels, "lrn: rows x channels");
  CCN_REQUIRE_DISJOINT(y, total, x, total);  // a window reads channels other threads write
  if (kernel == 1) {
    CCN_LAUNCH(lrn_forward_kernel1, grid_stride_blocks(rows * channels, 256), 256, 0, stream)(x, y, rows, a);
    CCN_CHECK_LAUNCH("lrn_forward_kernel1");
    return;
  }
  const int rpb = kLrnTileFloats / channels;
  const long long blocks = (rows + rpb - 1) / rpb;
  CCN_REQUIRE(blocks <= 0x7fffffffLL, "too many rows");
  const bool vec = channels % 4 == 0 && aligned16(x) && aligned16(y);
  auto kern = vec ? lrn_forward_kernel2<4> : lrn_forward_kernel2<1>;
  CCN_LAUNCH(kern, static_cast<unsigned>(blocks), kLrnThreads, (size_t)rpb * channels * sizeof(float), stream)(
      x, y, rows, rpb, a);
  CCN_CHECK_LAUNCH("lrn_forward_kernel2");
}

void lrn_backward(const float* x, const float* y, const float* dy, float* dx, long long rows_, int channels_,
                  int groups, int before, int after, float alpha, float neg_beta, float k, float coef,
                  cudaStream_t stream, int version, bool relu_mask) {
  const LrnShape sh = lrn_shape(rows_, channels_, groups);
  const long long rows = sh.rows;
  const int channels = sh.channels;
  LrnParams a = lrn_params(channels, before, after, alpha, neg_beta, k, coef);
  a.relu_mask = relu_mask;
  const int kernel = pick_version(rows, channels, version);
  if (rows == 0) return;
  CCN_REQUIRE(x && y && dy && dx, "null pointer");
  const long long total = checked_floats(rows, channels, "lrn_backward: rows x channels");
  CCN_REQUIRE_DISJOINT(dx, total, x, total);
  CCN_REQUIRE_DISJOINT(dx, total, y, total);
  CCN_REQUIRE_DISJOINT(dx, total, dy, total);
  if (kernel == 1) {
    CCN_LAUNCH(lrn_backward_kernel1, grid_stride_blocks(rows * channels, 256), 256, 0, stream)(x, y, dy, dx, rows, a);
    CCN_CHECK_LAUNCH("lrn_backward_kernel1");
    return;
  }
  const int rpb = kLrnTileFloats / channels;
  const long long blocks = (rows + rpb - 1) / rpb;
  CCN_REQUIRE(blocks <= 0x7fffffffLL, "too many rows");
  const bool vec = channels % 4 == 0 && aligned16(x) && aligned16(y) && aligned16(dy) && aligned16(dx);
  auto kern = vec ? lrn_backward_kernel2<4> : lrn_backward_kernel2<1>;
  CCN_LAUNCH(kern, static_cast<unsigned>(blocks), kLrnThreads, (size_t)3 * rpb * channels * sizeof(float), stream)(
      x, y, dy, dx, rows, rpb, a);
  CCN_CHECK_LAUNCH("lrn_backward_kernel2");
}

}  // namespace ccn
