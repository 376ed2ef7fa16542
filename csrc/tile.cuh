// Register-tile micro-kernels shared by the GEMM (gemm.cuh) and the implicit-GEMM
// convolutions (conv_fwd.cuh, conv_dgrad.cuh, conv_wgrad.cuh): one K step of a block's
// 256 threads (16 x 16, tx fastest) multiplying the A and B tiles that sit in shared
// memory k-major, As[BK][LDA] and Bs[BK][LDB]. The kernels differ only in how they load
// the tiles (a plain matrix or a gather from NHWC/KRSC tensors) and in the epilogue.
#pragma once

#include "common.h"

namespace ccn {

template <int TM, int TN>
__device__ __forceinline__ void tile_zero(float (&acc)[TM][TN]) {
#pragma unroll
  for (int i = 0; i < TM; ++i)
#pragma unroll
    for (int j = 0; j < TN; ++j) acc[i][j] = 0.f;
}

// acc += As^T Bs over one BK-deep step, for a thread owning rows ty + 16 i (i < TM) and
// columns tx + 16 j (j < TN) of a BM x BN = 16 TM x 16 TN block tile: B reads are
// consecutive across tx (conflict-free), A reads are broadcasts. (gemm_kernel1 and the
// conv kernels' kernel1 versions.)
template <int BK, int LDA, int LDB, int TM, int TN>
__device__ __forceinline__ void tile_fma_strided(const float* As, const float* Bs, float (&acc)[TM][TN], int tx,
                                                 int ty) {
#pragma unroll
  for (int kk = 0; kk < BK; ++kk) {
    float a[TM], b[TN];
#pragma unroll
    for (int i = 0; i < TM; ++i) a[i] = As[kk * LDA + ty + 16 * i];
#pragma unroll
    for (int j = 0; j < TN; ++j) b[j] = Bs[kk * LDB + tx + 16 * j];
#pragma unroll
    for (int i = 0; i < TM; ++i)
#pragma unroll
      for (int j = 0; j < TN; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
  }
}

// acc += As^T Bs over one BK-deep step of a (64 + 16 (TM - 4)) x 2 HALF_N block tile, for a
// thread owning the TM x 8 register tile of rows {4 ty + i (i < 4), 64 + (TM - 4) ty + i
// (i < TM - 4)} and columns {4 tx + j, HALF_N + 4 tx + j} (j < 4). TM = 8: 128 rows, every
// shared read a float4, 64 FMAs per 4 reads; TM = 6: 96 rows (a 96-filter tile for K/groups
// = 96, 192), the second A read a float2, 48 FMAs per 4 reads. A reads are broadcasts across
// tx, B reads consecutive float4s. LDA, LDB and HALF_N must keep the reads aligned.
template <int BK, int LDA, int LDB, int HALF_N = 64, int TM = 8>
__device__ __forceinline__ void tile_fma_rows(const float* As, const float* Bs, float (&acc)[TM][8], int tx,
                                              int ty) {
  static_assert(TM == 8 || TM == 6, "a float4 plus a float4 or float2 of A rows");
  static_assert(LDA % 4 == 0 && LDB % 4 == 0 && HALF_N % 4 == 0, "float4 reads need 16-byte alignment");
#pragma unroll
  for (int kk = 0; kk < BK; ++kk) {
    float a[TM], b[8];
    float4 v;
    v = *reinterpret_cast<const float4*>(As + kk * LDA + 4 * ty);
    a[0] = v.x; a[1] = v.y; a[2] = v.z; a[3] = v.w;
    if constexpr (TM == 8) {
      v = *reinterpret_cast<const float4*>(As + kk * LDA + 64 + 4 * ty);
      a[4] = v.x; a[5] = v.y; a[6] = v.z; a[7] = v.w;
    } else {
      const float2 h = *reinterpret_cast<const float2*>(As + kk * LDA + 64 + 2 * ty);
      a[4] = h.x; a[5] = h.y;
    }
    v = *reinterpret_cast<const float4*>(Bs + kk * LDB + 4 * tx);
    b[0] = v.x; b[1] = v.y; b[2] = v.z; b[3] = v.w;
    v = *reinterpret_cast<const float4*>(Bs + kk * LDB + HALF_N + 4 * tx);
    b[4] = v.x; b[5] = v.y; b[6] = v.z; b[7] = v.w;
#pragma unroll
    for (int i = 0; i < TM; ++i)
#pragma unroll
      for (int j = 0; j < 8; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
  }
}

// The 128 x 2 HALF_N tile of tile_fma_rows (TM = 8): gemm_kernel2, conv_fwd_kernel2/3,
// conv_wgrad_kernel2/3 with the 128 x 128 tile; conv_dgrad_kernel2 with 128 x BN tiles,
// HALF_N = BN / 2.
template <int BK, int LDA, int LDB, int HALF_N = 64>
__device__ __forceinline__ void tile_fma_8x8(const float* As, const float* Bs, float (&acc)[8][8], int tx, int ty) {
  tile_fma_rows<BK, LDA, LDB, HALF_N, 8>(As, Bs, acc, tx, ty);
}

}  // namespace ccn
