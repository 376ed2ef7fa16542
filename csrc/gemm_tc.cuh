// Tensor-core GEMM: C[M,N] = alpha * op(A) op(B) + beta * C + bias, optional ReLU, with
// float32 operands in global memory rounded on the way into the tensor cores
// (DESIGN.md §10). The FC layers' forward, dgrad and wgrad at precision "tf32", "3xtf32"
// or "bf16" (gemm.cuh is the float32 SIMT path, precision "fp32").
//
// gemm_tc_kernel1<BM, TRANS_A, TRANS_B, PREC, VEC>: 128 threads = 4 warps, block tile BM x 64,
// K step 16, float32 accumulators.
//   BM = 64: warps 2 x 2, warp tile 32 x 32 = 2 x 4 mma tiles of 16 x 8;
//   BM = 16: warps 1 x 4, warp tile 16 x 16 = 1 x 2 mma tiles (small M: the FC layers at a
//            small batch would waste 3/4 of the 64-row tile).
// PREC (tf32, 3xtf32, bf16), the 3-stage cp.async pipeline with one barrier per K step,
// the shared-tile layouts and the fragment reads: tc_mainloop.cuh (shared with the
// implicit-GEMM convolutions of conv_tc_*.cuh; this file only adds the matrix tile loader).
// Ragged edges: copies of rows/cols past M, N, K read nothing and zero-fill (src-size 0,
// or fewer bytes at a K or M/N tail), so the MMAs see zeros there and no branch is
// needed. VEC: 16-byte copies, which need 16-byte aligned bases and leading dimensions
// (the contiguous ones) that are multiples of 4 for both operands; otherwise (!VEC) both
// are copied with 4-byte cp.async, element by element (the same pipeline, more copies;
// a template parameter so that the fast path's main loop carries no fallback code).
// Every output element is one thread's fixed-order accumulation (K steps ascending), so
// results are deterministic: no atomics, no split-K.
// Preconditions: M, N, K >= 1; C does not alias A or B; sm_80 or newer.
#pragma once

#include "common.h"
#include "ptx.cuh"
// <...>: a mutated copy put first on the include path shadows it (the planted-bug tests).
#include <tc_mainloop.cuh>

namespace ccn {

constexpr int kGemmTcBN = 64, kGemmTcBK = kTcBK, kGemmTcThreads = 128, kGemmTcStages = kTcStages;

// Shared-memory floats of one stage of the A / B tile for a layout (see the header).
__host__ __device__ constexpr int gemm_tc_a_stage(bool trans_a, int bm) {
  return trans_a ? kGemmTcBK * (bm + 8) : bm * (kGemmTcBK + 4);
}
__host__ __device__ constexpr int gemm_tc_b_stage(bool trans_b) {
  return trans_b ? kGemmTcBN * (kGemmTcBK + 4) : kGemmTcBK * (kGemmTcBN + 8);
}
__host__ __device__ constexpr int gemm_tc_smem_floats(bool trans_a, bool trans_b, int bm) {
  return kGemmTcStages * (gemm_tc_a_stage(trans_a, bm) + gemm_tc_b_stage(trans_b));
}

// Copies rows [r0, r0 + ROWS) x cols [c0, c0 + COLS) of a row-major [rows, cols] matrix
// into a shared tile with row stride LD, zero past the matrix edges.
template <int ROWS, int COLS, int LD, bool VEC>
__device__ __forceinline__ void gemm_tc_copy_tile(float* s, const float* __restrict__ g, int r0, int c0, int rows,
                                                  int cols, int tid) {
  // Trip counts are compile-time constants so the loops unroll into straight-line copies.
  if (VEC) {
    constexpr int kChunks = ROWS * COLS / 4, kIters = (kChunks + kGemmTcThreads - 1) / kGemmTcThreads;
#pragma unroll
    for (int it = 0; it < kIters; ++it) {
      int i = tid + it * kGemmTcThreads;
      if (kChunks % kGemmTcThreads != 0 && i >= kChunks) break;
      int r = i / (COLS / 4), c = (i % (COLS / 4)) * 4;
      int gr = r0 + r, gc = c0 + c;
      bool in = gr < rows && gc < cols;  // cols % 4 == 0: a chunk is all in or all out
      cp_async_16(s + r * LD + c, in ? g + (long long)gr * cols + gc : g, in ? 16 : 0);
    }
  } else {
    constexpr int kIters = (ROWS * COLS + kGemmTcThreads - 1) / kGemmTcThreads;
#pragma unroll
    for (int it = 0; it < kIters; ++it) {
      int i = tid + it * kGemmTcThreads;
      if ((ROWS * COLS) % kGemmTcThreads != 0 && i >= ROWS * COLS) break;
      int r = i / COLS, c = i % COLS;
      int gr = r0 + r, gc = c0 + c;
      bool in = gr < rows && gc < cols;
      cp_async_4(s + r * LD + c, in ? g + (long long)gr * cols + gc : g, in ? 4 : 0);
    }
  }
}

template <int BM, bool TRANS_A, bool TRANS_B, int PREC, bool VEC>
__global__ void __launch_bounds__(kGemmTcThreads)
    gemm_tc_kernel1(const float* __restrict__ A, const float* __restrict__ B, float* __restrict__ C,
                   const float* __restrict__ bias, int M, int N, int K, float alpha, float beta, bool relu) {
  constexpr int WARPS_M = BM >= 32 ? BM / 32 : 1;
  using T = TcTile<BM, kGemmTcBN, WARPS_M, 4 / WARPS_M, TRANS_A, TRANS_B, PREC>;
  static_assert(T::THREADS == kGemmTcThreads && T::A_STAGE == gemm_tc_a_stage(TRANS_A, BM) &&
                T::B_STAGE == gemm_tc_b_stage(TRANS_B), "tile");
  constexpr int BK = kGemmTcBK, BN = kGemmTcBN, LDA = T::LDA, LDB = T::LDB;

  CCN_DYNAMIC_SHARED(float, smem);
  const int tid = threadIdx.x;
  const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;

  auto load = [&](float* sa, float* sb, int kt) {
    int k0 = kt * BK;
    if (TRANS_A)  // A stored [K, M]
      gemm_tc_copy_tile<BK, BM, LDA, VEC>(sa, A, k0, m0, K, M, tid);
    else  // A stored [M, K]
      gemm_tc_copy_tile<BM, BK, LDA, VEC>(sa, A, m0, k0, M, K, tid);
    if (TRANS_B)  // B stored [N, K]
      gemm_tc_copy_tile<BN, BK, LDB, VEC>(sb, B, n0, k0, N, K, tid);
    else  // B stored [K, N]
      gemm_tc_copy_tile<BK, BN, LDB, VEC>(sb, B, k0, n0, K, N, tid);
  };
  float acc[T::MI][T::NI][4];
  tc_mainloop<T>(acc, smem, 0, (K + BK - 1) / BK, load);

  tc_epilogue<T>(acc, [&](int mt, int nt, float v) {
    int m = m0 + mt, n = n0 + nt;
    if (m >= M || n >= N) return;
    v *= alpha;
    float* out = C + (long long)m * N + n;
    if (beta != 0.f) v = fmaf(beta, *out, v);
    if (bias) v += bias[n];
    if (relu) v = (v <= 0.f) ? 0.f : v;
    *out = v;
  });
}

}  // namespace ccn
