// Launcher of conv_dgrad.cuh (contract in conv.h and ops.h).
#include "conv.h"
#include "conv_dgrad.cuh"

namespace ccn {

namespace {

template <int BM, int BN>
void launch_dgrad(const float* dy, const float* w, float* dx, const ConvShape& g, cudaStream_t stream) {
  const long long st = g.stride;
  // The largest phase: ceil(H / stride) x ceil(W / stride) pixels per image.
  const long long m_max = (long long)g.n * ((g.h + st - 1) / st) * ((g.w + st - 1) / st);
  dim3 grid(ceil_div(m_max, BM), ceil_div(g.cg, BN), static_cast<unsigned>(g.groups * st * st));
  auto kernel = conv_dgrad_kernel1<BM, BN>;  // a pointer: no commas inside the macro
  constexpr std::size_t smem = conv_smem_floats<BM, BN>() * sizeof(float);
  CCN_LAUNCH(kernel, grid, dim3(16, 16), smem, stream)(dy, w, dx, g);
}

}  // namespace

void conv2d_dgrad(const float* dy, const float* w, float* dx, const ConvShape& g, cudaStream_t stream) {
  CCN_REQUIRE(dy && w && dx, "null tensor pointer");
  CCN_REQUIRE(g.n >= 1 && g.p >= 1 && g.q >= 1 && g.cg * g.groups == g.c && g.kg * g.groups == g.k,
              "shape not made by make_conv_shape");
  CCN_REQUIRE((long long)g.groups * g.stride * g.stride <= 65535,
              "groups * stride^2 too large for the grid's z dimension");
  CCN_REQUIRE(ceil_div(g.cg, kConvBN) <= 65535u, "C/groups too large for the grid's y dimension");
  // A GEMM only a few channels wide (conv1: C = 3) takes the tall, narrow tile.
  if (g.cg <= 16) {
    launch_dgrad<256, 16>(dy, w, dx, g, stream);
  } else {
    launch_dgrad<kConvBM, kConvBN>(dy, w, dx, g, stream);
  }
  CCN_CHECK_LAUNCH("conv_dgrad_kernel1");
}

}  // namespace ccn
