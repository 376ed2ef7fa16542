// Launcher of conv_dgrad.cuh and conv_dgrad2.cuh (contract in conv.h and ops.h).
#include "conv.h"
#include "conv_dgrad.cuh"
#include "conv_dgrad2.cuh"

namespace ccn {

namespace {

// The largest phase: ceil(H / stride) x ceil(W / stride) pixels per image.
long long dgrad_rows_max(const ConvShape& g) {
  const long long st = g.stride;
  return (long long)g.n * ((g.h + st - 1) / st) * ((g.w + st - 1) / st);
}

template <int BM, int BN>
void launch_dgrad1(const float* dy, const float* w, float* dx, const ConvShape& g, cudaStream_t stream) {
  dim3 grid(ceil_div(dgrad_rows_max(g), BM), ceil_div(g.cg, BN), static_cast<unsigned>(g.groups * g.stride * g.stride));
  auto kernel = conv_dgrad_kernel1<BM, BN>;  // a pointer: no commas inside the macro
  constexpr std::size_t smem = conv_smem_floats<BM, BN>() * sizeof(float);
  CCN_LAUNCH(kernel, grid, dim3(16, 16), smem, stream)(dy, w, dx, g);
  CCN_CHECK_LAUNCH("conv_dgrad_kernel1");
}

template <int BN>
void launch_dgrad2(const float* dy, const float* w, float* dx, const ConvShape& g, cudaStream_t stream) {
  dim3 grid(ceil_div(dgrad_rows_max(g), kDgrad2BM), ceil_div(g.cg, BN),
            static_cast<unsigned>(g.groups * g.stride * g.stride));
  auto kernel = conv_dgrad_kernel2<BN>;
  constexpr int smem = dgrad2_smem_floats<BN>() * sizeof(float);
#if !defined(CCN_EMU)
  // Above the default 48 KB of dynamic shared memory (BN = 128: 50,688 bytes) the kernel must opt
  // in; set on every launch, so it holds on whichever device is current.
  if (smem > 48 * 1024) {
    cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
    if (e != cudaSuccess)
      throw std::runtime_error(std::string("conv_dgrad_kernel2: cannot allow ") + std::to_string(smem) +
                               " bytes of dynamic shared memory: " + cudaGetErrorString(e));
  }
#endif
  CCN_LAUNCH(kernel, grid, dim3(dgrad2_threads<BN>()), smem, stream)(dy, w, dx, g);
  CCN_CHECK_LAUNCH("conv_dgrad_kernel2");
}

}  // namespace

bool conv_dgrad_kernel2_applies(const float* dy, const float* w, const float* dx, const ConvShape& g) {
  // 64-bit sums: K/groups + stride + 1 passes 2^31 for a stride near kMaxExtent (which the
  // version query accepts; conv2d_dgrad itself refuses groups * stride^2 > 65535 first).
  const long long lim = 1LL << 31;
  return g.kg % 4 == 0 && g.cg % 4 == 0 && aligned16(dy) && aligned16(w) && (dx == nullptr || aligned16(dx)) &&
         g.npq * g.k < lim && (long long)(g.r + 1) * (g.q + 1) * g.k < lim &&
         ((long long)g.kg + g.stride + 1) * g.rscg < lim && ceil_div(g.cg, conv_dgrad_tile_n(g.cg)) <= 65535u;
}

int conv_dgrad_tile_n(int cg) {
  CCN_REQUIRE(cg >= 1, "C/groups must be >= 1");
  // The fewest padded channel columns; ties go to the earlier width of {128, 64, 48}:
  // 128 and 64 keep 16 warps per SM (sm_90: 2 blocks of 256 or 4 of 128 threads at 128
  // registers), 48 keeps 15 (5 blocks of 96). A 96-wide tile needs 165 registers (2 blocks
  // of 192 threads, 12 warps) and pads exactly as two 48-wide ones, so it is not offered.
  int best = 128;
  long long best_cols = (long long)ceil_div(cg, 128) * 128;
  for (int bn : {64, 48}) {
    long long cols = (long long)ceil_div(cg, bn) * bn;
    if (cols < best_cols) best = bn, best_cols = cols;
  }
  return best;
}

DgradTile conv2d_dgrad_tile(const ConvShape& g, int kernel) {
  CCN_REQUIRE(kernel == 1 || kernel == 2, "kernel must be 1 or 2");
  if (kernel == 2) return {kDgrad2BM, conv_dgrad_tile_n(g.cg)};
  return g.cg <= 16 ? DgradTile{256, 16} : DgradTile{kConvBM, kConvBN};
}

int conv2d_dgrad_version(const float* dy, const float* w, const float* dx, const ConvShape& g, int version) {
  CCN_REQUIRE(version >= 0 && version <= 2, "version must be 0 (the launcher picks), 1 or 2");
  const bool fast = conv_dgrad_kernel2_applies(dy, w, dx, g);
  CCN_REQUIRE(version != 2 || fast,
              "conv_dgrad_kernel2 needs K/groups % 4 == 0, C/groups % 4 == 0, 16-byte aligned dy, w and dx, "
              "N*P*Q*K, (R+1)*(Q+1)*K, (K/groups + stride + 1)*R*S*C/groups < 2^31 and its C/groups tiles "
              "within the grid's y dimension");
  // C/g <= 16 (conv1's C = 3): kernel1's 256 x 16 tile pads less than a 48-wide one.
  return version != 0 ? version : (fast && g.cg > 16 ? 2 : 1);
}

void conv2d_dgrad(const float* dy, const float* w, float* dx, const ConvShape& g, cudaStream_t stream, int version) {
  CCN_REQUIRE(dy && w && dx, "null tensor pointer");
  conv_require_shape(g);
  CCN_REQUIRE((long long)g.groups * g.stride * g.stride <= 65535,
              "groups * stride^2 too large for the grid's z dimension");
  CCN_REQUIRE(ceil_div(g.cg, kConvBN) <= 65535u, "C/groups too large for the grid's y dimension");
  const int kernel = conv2d_dgrad_version(dy, w, dx, g, version);
  CCN_REQUIRE_DISJOINT(dx, conv_x_floats(g), dy, conv_y_floats(g));
  CCN_REQUIRE_DISJOINT(dx, conv_x_floats(g), w, conv_w_floats(g));
  if (kernel == 2) {
    switch (conv_dgrad_tile_n(g.cg)) {
      case 48: launch_dgrad2<48>(dy, w, dx, g, stream); break;
      case 64: launch_dgrad2<64>(dy, w, dx, g, stream); break;
      default: launch_dgrad2<128>(dy, w, dx, g, stream); break;
    }
  } else if (g.cg <= 16) {
    // A GEMM only a few channels wide (conv1: C = 3) takes the tall, narrow tile.
    launch_dgrad1<256, 16>(dy, w, dx, g, stream);
  } else {
    launch_dgrad1<kConvBM, kConvBN>(dy, w, dx, g, stream);
  }
}

}  // namespace ccn
