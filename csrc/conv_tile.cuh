// The block tiles shared by the three implicit-GEMM convolution kernels (conv_fwd.cuh,
// conv_dgrad.cuh, conv_wgrad.cuh): the shape of gemm_kernel1 (gemm.cuh), with the loads
// replaced by gathers from the NHWC/KRSC tensors.
//
//   Block: 256 threads as 16 x 16 (tx, ty); block tile BM x BN of the GEMM's output, K
//   step BK = 16. Thread (tx, ty) owns a TM x TN register tile (TM = BM/16, TN = BN/16):
//   GEMM rows ty + 16*i and columns tx + 16*j, so its shared-memory reads of the B tile
//   are consecutive across tx (conflict-free), its reads of the A tile are broadcasts,
//   and its stores to global memory are coalesced across tx when the output is
//   contiguous along the GEMM's columns (all three convolution outputs are).
//   Tiles: 64 x 64 (TM = TN = 4, the default) and 256 x 16 (TM = 16, TN = 1, for a GEMM
//   only a few columns wide, such as conv1's dgrad with its 3 input channels, where a
//   64-wide tile would be 95% padding).
//   Shared tiles are stored k-major, As[BK][BM + pad] and Bs[BK][BN + pad], 4 floats of
//   padding per row (as gemm_kernel1).
#pragma once

#include "common.h"
#include "tile.cuh"  // the register-tile FMA step shared with gemm.cuh

namespace ccn {

constexpr int kConvBM = 64, kConvBN = 64, kConvBK = 16;
constexpr int kConvThreads = 256;
constexpr int kConvPad = 4;
constexpr int kConvLdA = kConvBM + kConvPad, kConvLdB = kConvBN + kConvPad;
constexpr int kConvSmemFloats = kConvBK * kConvLdA + kConvBK * kConvLdB;
// Shared-memory floats of a BM x BN tile pair.
template <int BM, int BN>
constexpr int conv_smem_floats() {
  return kConvBK * (BM + kConvPad) + kConvBK * (BN + kConvPad);
}
// The receptive-field origin of a GEMM row past the edge of a tile: adding any filter tap
// r in [0, kMaxExtent] (make_conv_shape bounds R by the padded height) keeps it negative
// without overflow, so one unsigned compare rejects the load. Columns past Kgemm are
// rejected by their own k < Kgemm test instead: no tap value is off-image for every
// legal origin without overflowing int.
constexpr int kConvOffImage = static_cast<int>(-kMaxExtent - 1);

// True when 0 <= v < bound (one unsigned compare).
__device__ __forceinline__ bool conv_in_range(int v, int bound) {
  return static_cast<unsigned>(v) < static_cast<unsigned>(bound);
}

// The tap (r, s, c) of column j = (r*S + s)*cg + c of the KRSC filter order (S filter
// columns, cg channels per group): two divisions, once per thread, outside the K loop.
__device__ __forceinline__ void conv_decode_tap(int j, int cg, int S, int& r, int& s, int& c) {
  const int rs = j / cg;
  c = j - rs * cg;
  r = rs / S;
  s = rs - r * S;
}

}  // namespace ccn
