// Launchers for lrn.cuh (see ops.h for the contract).
#include "lrn.cuh"
#include "lrn.h"

namespace ccn {

static LrnParams lrn_params(long long rows, int channels, long long size, float alpha, float neg_beta, float k,
                            float coef) {
  CCN_REQUIRE(rows >= 0, "rows must be >= 0");
  CCN_REQUIRE(channels >= 1, "channels must be >= 1");
  CCN_REQUIRE_EXTENT(channels, "channels");
  CCN_REQUIRE(size >= 1, "size must be >= 1");
  CCN_REQUIRE(k > 0.f, "k must be > 0");
  LrnParams a;
  a.channels = channels;
  // Clipping to the row makes a window wider than 2C - 1 equivalent to one of that width.
  // A window reaching past both ends of the row is the whole row: clip it to channels so
  // any size (up to 2^63) is legal and the kernels' index sums stay in range.
  a.before = static_cast<int>(size / 2 < channels ? size / 2 : channels);
  a.after = static_cast<int>((size - 1) / 2 < channels ? (size - 1) / 2 : channels);
  a.alpha = alpha;
  a.neg_beta = neg_beta;
  a.k = k;
  a.coef = coef;
  return a;
}

// Kernel 2 runs one block per tile of rows, so its grid must fit 2^31 - 1 blocks; kernel 1
// is a grid-stride loop and takes any row count.
static bool kernel2_fits(long long rows, int channels) {
  if (channels > kLrnTileFloats) return false;
  const int rpb = kLrnTileFloats / channels;
  return (rows + rpb - 1) / rpb <= 0x7fffffffLL;
}

int lrn_version(long long rows, int channels, int version) {
  CCN_REQUIRE(version >= 0 && version <= 2, "version must be 0 (the launcher picks), 1 or 2");
  if (version == 2) CCN_REQUIRE(channels <= kLrnTileFloats, "lrn kernel2 needs channels <= 2048");
  if (version == 0) version = kernel2_fits(rows, channels) ? 2 : 1;
  return version;
}

void lrn(const float* x, float* y, long long rows, int channels, long long size, float alpha, float neg_beta,
         float k, cudaStream_t stream, int version) {
  const LrnParams a = lrn_params(rows, channels, size, alpha, neg_beta, k, 0.f);
  const int kernel = lrn_version(rows, channels, version);
  if (rows == 0) return;
  CCN_REQUIRE(x && y, "null pointer");
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

void lrn_backward(const float* x, const float* y, const float* dy, float* dx, long long rows, int channels,
                  long long size, float alpha, float neg_beta, float k, float coef, cudaStream_t stream,
                  int version) {
  const LrnParams a = lrn_params(rows, channels, size, alpha, neg_beta, k, coef);
  const int kernel = lrn_version(rows, channels, version);
  if (rows == 0) return;
  CCN_REQUIRE(x && y && dy && dx, "null pointer");
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
