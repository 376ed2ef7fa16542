// Launcher for philox.cuh (see ops.h for the contract).
#include "philox.cuh"
#include "philox.h"

namespace ccn {

void philox4x32(const unsigned* counters, const unsigned* keys, unsigned* out, long long n, cudaStream_t stream) {
  CCN_REQUIRE(n >= 0, "n must be >= 0");
  if (n == 0) return;
  CCN_REQUIRE(counters && keys && out, "null pointer");
  CCN_LAUNCH(philox4x32_kernel1, grid_stride_blocks(n, 256), 256, 0, stream)(counters, keys, out, n);
  CCN_CHECK_LAUNCH("philox4x32_kernel1");
}

}  // namespace ccn
