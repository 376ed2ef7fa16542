// Launchers for activation.cuh (see ops.h for the contract).
#include "activation.cuh"
#include "activation.h"

namespace ccn {

template <typename Op>
static void launch_map(const char* name, const float* x, float* y, long long n, cudaStream_t stream) {
  CCN_REQUIRE(n >= 0, "n must be >= 0");
  if (n == 0) return;
  CCN_REQUIRE(x && y, "null pointer");
  bool vec = aligned16(x) && aligned16(y);
  auto k = vec ? map_kernel1<Op, true> : map_kernel1<Op, false>;
  CCN_LAUNCH(k, grid_stride_blocks(vec ? n / 4 : n, 256), 256, 0, stream)(x, y, n);
  CCN_CHECK_LAUNCH(name);
}

template <typename Op>
static void launch_map2(const char* name, const float* y, const float* dy, float* dx, long long n,
                        cudaStream_t stream) {
  CCN_REQUIRE(n >= 0, "n must be >= 0");
  if (n == 0) return;
  CCN_REQUIRE(y && dy && dx, "null pointer");
  bool vec = aligned16(y) && aligned16(dy) && aligned16(dx);
  auto k = vec ? map2_kernel1<Op, true> : map2_kernel1<Op, false>;
  CCN_LAUNCH(k, grid_stride_blocks(vec ? n / 4 : n, 256), 256, 0, stream)(y, dy, dx, n);
  CCN_CHECK_LAUNCH(name);
}

void relu(const float* x, float* y, long long n, cudaStream_t stream) {
  launch_map<Relu>("map_kernel1<Relu>", x, y, n, stream);
}
void relu_backward(const float* y, const float* dy, float* dx, long long n, cudaStream_t stream) {
  launch_map2<ReluGrad>("map2_kernel1<ReluGrad>", y, dy, dx, n, stream);
}
void tanh(const float* x, float* y, long long n, cudaStream_t stream) {
  launch_map<Tanh>("map_kernel1<Tanh>", x, y, n, stream);
}
void tanh_backward(const float* y, const float* dy, float* dx, long long n, cudaStream_t stream) {
  launch_map2<TanhGrad>("map2_kernel1<TanhGrad>", y, dy, dx, n, stream);
}

}  // namespace ccn
