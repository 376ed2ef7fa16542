// Launcher of conv_fwd.cuh (contract in conv.h and ops.h).
#include "conv.h"
#include "conv_fwd.cuh"

namespace ccn {

void conv_forward(const float* x, const float* w, const float* b, float* y, const ConvShape& g, bool relu,
                  cudaStream_t stream) {
  CCN_REQUIRE(x && w && y, "null tensor pointer");
  CCN_REQUIRE(g.n >= 1 && g.p >= 1 && g.q >= 1 && g.cg * g.groups == g.c && g.kg * g.groups == g.k,
              "shape not made by make_conv_shape");
  CCN_REQUIRE(g.groups <= 65535, "groups too large for the grid's z dimension");
  CCN_REQUIRE(ceil_div(g.kg, kConvBN) <= 65535u, "K/groups too large for the grid's y dimension");
  dim3 grid(ceil_div(g.npq, kConvBM), ceil_div(g.kg, kConvBN), g.groups);
  dim3 block(16, 16);
  CCN_LAUNCH(conv_fwd_kernel1, grid, block, kConvSmemFloats * sizeof(float), stream)(x, w, b, y, g, relu);
  CCN_CHECK_LAUNCH("conv_fwd_kernel1");
}

}  // namespace ccn
