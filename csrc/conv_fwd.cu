// Launcher of conv_fwd.cuh (contract in conv.h and ops.h).
#include "conv.h"
#include "conv_fwd.cuh"

namespace ccn {

bool conv_fwd_kernel2_applies(const float* x, const float* w, const ConvShape& g) {
  return g.cg % 4 == 0 && aligned16(x) && aligned16(w);
}

bool conv_fwd_kernel3_applies(const ConvShape& g) {
  // The largest tap offset, ((R-1)*W + S-1)*C + C-1, within int (S may exceed W with padding).
  return ((long long)(g.r - 1) * g.w + g.s) * g.c <= 0x7fffffffLL;
}

int conv2d_version(const float* x, const float* w, const ConvShape& g, int version) {
  CCN_REQUIRE(version >= 0 && version <= 3, "version must be 0 (the launcher picks), 1, 2 or 3");
  const bool fast = conv_fwd_kernel2_applies(x, w, g);
  CCN_REQUIRE(version != 2 || fast, "conv_fwd_kernel2 needs C/groups % 4 == 0 and 16-byte aligned x and w");
  const bool table = conv_fwd_kernel3_applies(g);
  CCN_REQUIRE(version != 3 || table, "conv_fwd_kernel3 needs ((R-1)*W + S)*C < 2^31 (32-bit tap offsets)");
  return version != 0 ? version : (fast ? 2 : table ? 3 : 1);
}

void conv2d(const float* x, const float* w, const float* b, float* y, const ConvShape& g, bool relu,
            cudaStream_t stream, int version) {
  CCN_REQUIRE(x && w && y, "null tensor pointer");
  conv_require_shape(g);
  CCN_REQUIRE(g.groups <= 65535, "groups too large for the grid's z dimension");
  CCN_REQUIRE(ceil_div(g.kg, kConvBN) <= 65535u, "K/groups too large for the grid's y dimension");
  const int v = conv2d_version(x, w, g, version);
  CCN_REQUIRE_DISJOINT(y, conv_y_floats(g), x, conv_x_floats(g));
  CCN_REQUIRE_DISJOINT(y, conv_y_floats(g), w, conv_w_floats(g));
  CCN_REQUIRE_DISJOINT(y, conv_y_floats(g), b, g.k);
  if (v == 2 || v == 3) {
    // The 128 x 128 pipelined tile: the vector gather (2) or the scalar one (3, any C/groups).
    dim3 grid(ceil_div(g.npq, kConvFwd2BM), ceil_div(g.kg, kConvFwd2BN), g.groups);
    CCN_LAUNCH(v == 2 ? conv_fwd_kernel2 : conv_fwd_kernel3, grid, dim3(16, 16),
               kConvFwd2SmemFloats * sizeof(float), stream)(x, w, b, y, g, relu);
    CCN_CHECK_LAUNCH(v == 2 ? "conv_fwd_kernel2" : "conv_fwd_kernel3");
  } else {
    dim3 grid(ceil_div(g.npq, kConvBM), ceil_div(g.kg, kConvBN), g.groups);
    CCN_LAUNCH(conv_fwd_kernel1, grid, dim3(16, 16), kConvSmemFloats * sizeof(float), stream)(x, w, b, y, g, relu);
    CCN_CHECK_LAUNCH("conv_fwd_kernel1");
  }
}

}  // namespace ccn
