// Launchers for activation.cuh (see ops.h for the contract).
#include "activation.cuh"
#include "activation.h"

namespace ccn {

// Grid for the grid-stride elementwise kernels: enough blocks to fill an H100 (132 SMs x
// 2048 threads) and no more; each thread then loops.
static unsigned elementwise_blocks(long long work_items, int threads) {
  long long b = (work_items + threads - 1) / threads;
  return static_cast<unsigned>(b < 1 ? 1 : (b > 1056 ? 1056 : b));
}

void relu_forward(const float* x, float* y, long long n, cudaStream_t stream) {
  CCN_REQUIRE(n >= 0, "n must be >= 0");
  if (n == 0) return;
  CCN_REQUIRE(x && y, "null pointer");
  bool vec = aligned16(x) && aligned16(y);
  auto k = vec ? relu_forward_kernel1<true> : relu_forward_kernel1<false>;
  CCN_LAUNCH(k, elementwise_blocks(vec ? n / 4 : n, 256), 256, 0, stream)(x, y, n);
  CCN_CHECK_LAUNCH("relu_forward_kernel1");
}

void relu_backward(const float* y, const float* dy, float* dx, long long n, cudaStream_t stream) {
  CCN_REQUIRE(n >= 0, "n must be >= 0");
  if (n == 0) return;
  CCN_REQUIRE(y && dy && dx, "null pointer");
  bool vec = aligned16(y) && aligned16(dy) && aligned16(dx);
  auto k = vec ? relu_backward_kernel1<true> : relu_backward_kernel1<false>;
  CCN_LAUNCH(k, elementwise_blocks(vec ? n / 4 : n, 256), 256, 0, stream)(y, dy, dx, n);
  CCN_CHECK_LAUNCH("relu_backward_kernel1");
}

}  // namespace ccn
