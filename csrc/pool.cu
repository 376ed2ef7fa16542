// Launchers for pool.cuh (see ops.h for the contract).
#include "pool.cuh"
#include "pool.h"

namespace ccn {

// The floor rule of cuda_convnet/shapes.py (pool_output_size), checked here once more.
static PoolGeometry pool_geometry(int n, int h, int w, int c, int size, int stride, int top, int bottom, int left,
                                  int right, int p, int q) {
  CCN_REQUIRE(n >= 1 && h >= 1 && w >= 1 && c >= 1, "n, h, w, c must be >= 1");
  CCN_REQUIRE(size >= 1 && stride >= 1, "size and stride must be >= 1");
  CCN_REQUIRE(top >= 0 && bottom >= 0 && left >= 0 && right >= 0, "padding must be >= 0");
  CCN_REQUIRE(top < size && bottom < size && left < size && right < size, "each pad must be < size");
  const long long hp = (long long)h + top + bottom, wp = (long long)w + left + right;
  CCN_REQUIRE(hp >= size && wp >= size, "window larger than the padded input");
  CCN_REQUIRE_EXTENT(hp, "h + top + bottom");
  CCN_REQUIRE_EXTENT(wp, "w + left + right");
  CCN_REQUIRE(p == (hp - size) / stride + 1 && q == (wp - size) / stride + 1,
              "p, q are not the floor-rule output size (cuda_convnet/shapes.py)");
  CCN_REQUIRE((long long)n * h * w * c < (1LL << 62), "tensor too large");
  return PoolGeometry{n, h, w, c, size, stride, top, left, p, q};
}

void max_pool(const float* x, float* y, int n, int h, int w, int c, int size, int stride, int pad_top,
                      int pad_bottom, int pad_left, int pad_right, int p, int q, cudaStream_t stream) {
  const PoolGeometry g = pool_geometry(n, h, w, c, size, stride, pad_top, pad_bottom, pad_left, pad_right, p, q);
  CCN_REQUIRE(x && y, "null pointer");
  const bool vec = c % 4 == 0 && aligned16(x) && aligned16(y);
  const long long items = (long long)n * p * q * (vec ? c / 4 : c);
  auto k = vec ? max_pool_forward_kernel1<4> : max_pool_forward_kernel1<1>;
  CCN_LAUNCH(k, grid_stride_blocks(items, 256), 256, 0, stream)(x, y, g);
  CCN_CHECK_LAUNCH("max_pool_forward_kernel1");
}

void max_pool_backward(const float* x, const float* y, const float* dy, float* dx, int n, int h, int w, int c,
                       int size, int stride, int pad_top, int pad_bottom, int pad_left, int pad_right, int p, int q,
                       cudaStream_t stream, bool relu_mask) {
  const PoolGeometry g = pool_geometry(n, h, w, c, size, stride, pad_top, pad_bottom, pad_left, pad_right, p, q);
  CCN_REQUIRE(x && y && dy && dx, "null pointer");
  const bool vec = c % 4 == 0 && aligned16(x) && aligned16(y) && aligned16(dy) && aligned16(dx);
  const long long items = (long long)n * h * w * (vec ? c / 4 : c);
  auto k = vec ? max_pool_backward_kernel1<4> : max_pool_backward_kernel1<1>;
  CCN_LAUNCH(k, grid_stride_blocks(items, 256), 256, 0, stream)(x, y, dy, dx, g, relu_mask);
  CCN_CHECK_LAUNCH("max_pool_backward_kernel1");
}

}  // namespace ccn
