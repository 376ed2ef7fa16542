// Launcher for dropout.cuh (see ops.h for the contract).
#include "dropout.cuh"
#include "dropout.h"

namespace ccn {

void dropout(const float* x, float* y, long long n, unsigned long long seed, unsigned long long offset,
             unsigned threshold, float scale, bool mask, cudaStream_t stream) {
  CCN_REQUIRE(n >= 0, "n must be >= 0");
  if (n == 0) return;
  CCN_REQUIRE(x && y, "null pointer");
  CCN_REQUIRE(threshold <= (1u << 24), "threshold = ceil(p * 2^24) must be <= 2^24");
  using Kernel = void (*)(const float*, float*, long long, unsigned long long, unsigned long long, unsigned, float);
  const bool vec = aligned16(x) && aligned16(y);
  Kernel k = vec ? (mask ? dropout_kernel1<true, true> : dropout_kernel1<true, false>)
                 : (mask ? dropout_kernel1<false, true> : dropout_kernel1<false, false>);
  CCN_LAUNCH(k, grid_stride_blocks((n + 3) / 4, 256), 256, 0, stream)(x, y, n, seed, offset, threshold, scale);
  CCN_CHECK_LAUNCH("dropout_kernel1");
}

}  // namespace ccn
