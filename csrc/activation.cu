// Launchers for activation.cuh (see ops.h for the contract).
#include "activation.cuh"
#include "activation.h"

namespace ccn {

void relu_forward(const float* x, float* y, long long n, cudaStream_t stream) {
  CCN_REQUIRE(n >= 0, "n must be >= 0");
  if (n == 0) return;
  CCN_REQUIRE(x && y, "null pointer");
  bool vec = aligned16(x) && aligned16(y);
  auto k = vec ? relu_forward_kernel1<true> : relu_forward_kernel1<false>;
  CCN_LAUNCH(k, grid_stride_blocks(vec ? n / 4 : n, 256), 256, 0, stream)(x, y, n);
  CCN_CHECK_LAUNCH("relu_forward_kernel1");
}

void relu_backward(const float* y, const float* dy, float* dx, long long n, cudaStream_t stream) {
  CCN_REQUIRE(n >= 0, "n must be >= 0");
  if (n == 0) return;
  CCN_REQUIRE(y && dy && dx, "null pointer");
  bool vec = aligned16(y) && aligned16(dy) && aligned16(dx);
  auto k = vec ? relu_backward_kernel1<true> : relu_backward_kernel1<false>;
  CCN_LAUNCH(k, grid_stride_blocks(vec ? n / 4 : n, 256), 256, 0, stream)(y, dy, dx, n);
  CCN_CHECK_LAUNCH("relu_backward_kernel1");
}

void tanh_forward(const float* x, float* y, long long n, cudaStream_t stream) {
  CCN_REQUIRE(n >= 0, "n must be >= 0");
  if (n == 0) return;
  CCN_REQUIRE(x && y, "null pointer");
  bool vec = aligned16(x) && aligned16(y);
  auto k = vec ? tanh_forward_kernel1<true> : tanh_forward_kernel1<false>;
  CCN_LAUNCH(k, grid_stride_blocks(vec ? n / 4 : n, 256), 256, 0, stream)(x, y, n);
  CCN_CHECK_LAUNCH("tanh_forward_kernel1");
}

void tanh_backward(const float* y, const float* dy, float* dx, long long n, cudaStream_t stream) {
  CCN_REQUIRE(n >= 0, "n must be >= 0");
  if (n == 0) return;
  CCN_REQUIRE(y && dy && dx, "null pointer");
  bool vec = aligned16(y) && aligned16(dy) && aligned16(dx);
  auto k = vec ? tanh_backward_kernel1<true> : tanh_backward_kernel1<false>;
  CCN_LAUNCH(k, grid_stride_blocks(vec ? n / 4 : n, 256), 256, 0, stream)(y, dy, dx, n);
  CCN_CHECK_LAUNCH("tanh_backward_kernel1");
}

}  // namespace ccn
