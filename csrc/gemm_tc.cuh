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
// PREC:
//   kGemmTcTF32   mma.m16n8k8.tf32, operands cvt.rna.tf32 when the fragments are read;
//   kGemmTc3xTF32 each operand split x = big + small, big = cvt.rna.tf32(x),
//           small = cvt.rna.tf32(x - big); three mma per product, small terms first:
//           D += a_small b_big; D += a_big b_small; D += a_big b_big (a_small b_small,
//           ~2^-22 relative, is dropped): float32-level accuracy;
//   kGemmTcBF16 mma.m16n8k16.bf16, operands cvt.rn.bf16x2 (pairs along k) when the fragments
//           are read.
// Pipeline: 3 stages of shared memory, filled by cp.async (csrc/ptx/cp_async.cuh). Each K
// step: wait for the oldest stage, one barrier (its data from every thread is visible,
// and every thread is done with the stage the next copy overwrites), the MMAs, the copy
// of the tile kStages-1 steps ahead, commit. Empty commit groups past the last tile keep
// the count of groups per step fixed, so wait_group<kStages - 2> always covers the tile
// about to be read.
// Shared tiles keep the global layout (a 16-byte copy moves 4 consecutive elements along
// the contiguous dimension): A is [m][k] (row stride BK + 4) or, when TRANS_A, [k][m]
// (stride BM + 8); B is [n][k] (stride BK + 4) when TRANS_B, else [k][n] (stride BN + 8).
// The paddings make every fragment read conflict-free for tf32: lanes (g, t) read
// g * 20 + t or t * (BM or BN + 8) + g, which fall in 32 distinct banks.
// KVEC (3xtf32 and bf16 in the forward layout, A [m][k] and B [n][k]): rows unpadded
// (stride BK = 16) and each lane reads k = 4t..4t+3 of a fragment row with one 128-bit
// load (8 lanes of a phase read 8 distinct 16-byte bank groups). The mma's k order is
// then a permutation of the tile's, the same for A and B, so the products are unchanged:
// bf16 logical pairs (2t, 2t+1), (2t+8, 2t+9) are physical 4t, 4t+1 and 4t+2, 4t+3;
// tf32 logical (t, t+4) of sub-step s are physical 4t+2s, 4t+2s+1.
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

namespace ccn {

// PREC values (an int template parameter keeps the kernels' names plain in the SASS).
constexpr int kGemmTcTF32 = 0, kGemmTc3xTF32 = 1, kGemmTcBF16 = 2;

constexpr int kGemmTcBN = 64, kGemmTcBK = 16, kGemmTcThreads = 128, kGemmTcStages = 3;

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
  constexpr int BN = kGemmTcBN, BK = kGemmTcBK, S = kGemmTcStages;
  constexpr int WARPS_M = BM >= 32 ? BM / 32 : 1, WARPS_N = 4 / WARPS_M;
  constexpr int WM = BM / WARPS_M, WN = BN / WARPS_N, MI = WM / 16, NI = WN / 8;
  // KVEC: both tiles k-contiguous (the forward layout): unpadded rows, 128-bit fragment
  // loads. Not for tf32: there each element feeds one conversion, which then needs a register
  // move out of the loaded quad (measured on the sm_90 SASS: 234 instructions per K step
  // against 202 with 32-bit loads); bf16 and 3xtf32 gain (114 vs 123, 366 vs 390).
  constexpr bool KVEC = !TRANS_A && TRANS_B && PREC != kGemmTcTF32;
  constexpr int LDA = TRANS_A ? BM + 8 : (KVEC ? BK : BK + 4), LDB = TRANS_B ? (KVEC ? BK : BK + 4) : BN + 8;
  constexpr int A_STAGE = gemm_tc_a_stage(TRANS_A, BM), B_STAGE = gemm_tc_b_stage(TRANS_B);
  static_assert(WM % 16 == 0 && WN % 8 == 0 && WARPS_M * WARPS_N == 4, "warp tiling");

  CCN_DYNAMIC_SHARED(float, smem);
  float* sA = smem;                // [S][A_STAGE]
  float* sB = smem + S * A_STAGE;  // [S][B_STAGE]
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, g = lane >> 2, t = lane & 3;
  const int wm = (warp / WARPS_N) * WM, wn = (warp % WARPS_N) * WN;
  const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
  const int ktiles = (K + BK - 1) / BK;

  auto load = [&](int stage, int kt) {
    int k0 = kt * BK;
    if (TRANS_A)  // A stored [K, M]
      gemm_tc_copy_tile<BK, BM, LDA, VEC>(sA + stage * A_STAGE, A, k0, m0, K, M, tid);
    else  // A stored [M, K]
      gemm_tc_copy_tile<BM, BK, LDA, VEC>(sA + stage * A_STAGE, A, m0, k0, M, K, tid);
    if (TRANS_B)  // B stored [N, K]
      gemm_tc_copy_tile<BN, BK, LDB, VEC>(sB + stage * B_STAGE, B, n0, k0, N, K, tid);
    else  // B stored [K, N]
      gemm_tc_copy_tile<BK, BN, LDB, VEC>(sB + stage * B_STAGE, B, k0, n0, K, N, tid);
  };

  for (int s = 0; s < S - 1; ++s) {
    if (s < ktiles) load(s, s);
    cp_async_commit_group();
  }

  float acc[MI][NI][4];
#pragma unroll
  for (int i = 0; i < MI; ++i)
#pragma unroll
    for (int j = 0; j < NI; ++j)
#pragma unroll
      for (int r = 0; r < 4; ++r) acc[i][j][r] = 0.f;

  // Stage counters instead of kt % S: no division by 3 in the main loop.
  int read_stage = 0, write_stage = S - 1;
  for (int kt = 0; kt < ktiles; ++kt) {
    cp_async_wait_group<S - 2>();
    __syncthreads();
    const float* a_s = sA + read_stage * A_STAGE;
    const float* b_s = sB + read_stage * B_STAGE;
    // Element (m, k) of the A tile and (k, n) of the B tile, tile-relative.
    auto a_at = [&](int m, int k) { return TRANS_A ? a_s[k * LDA + m] : a_s[m * LDA + k]; };
    auto b_at = [&](int k, int n) { return TRANS_B ? b_s[n * LDB + k] : b_s[k * LDB + n]; };
    // KVEC (both tiles k-contiguous): one 128-bit load per fragment row, k = 4t..4t+3 (see
    // the header); av[i][h] is row wm + 16 i + g + 8 h of A, bv[j] column wn + 8 j + g of B.
    float4 av[MI][2], bv[NI];
    if (KVEC) {
#pragma unroll
      for (int i = 0; i < MI; ++i)
#pragma unroll
        for (int h = 0; h < 2; ++h)
          av[i][h] = *reinterpret_cast<const float4*>(a_s + (wm + i * 16 + g + h * 8) * LDA + 4 * t);
#pragma unroll
      for (int j = 0; j < NI; ++j) bv[j] = *reinterpret_cast<const float4*>(b_s + (wn + j * 8 + g) * LDB + 4 * t);
    }
    if (PREC == kGemmTcBF16) {
      uint32_t a[MI][4], b[NI][2];
#pragma unroll
      for (int i = 0; i < MI; ++i)
#pragma unroll
        for (int r = 0; r < 4; ++r) {
          int m = wm + i * 16 + g + (r & 1) * 8, k = 2 * t + (r >> 1) * 8;
          const float4& v = av[i][r & 1];  // logical k pairs (2t, 2t+1), (2t+8, 2t+9) = physical 4t.., 4t+2..
          a[i][r] = KVEC ? (r >> 1 ? cvt_rn_bf16x2(v.z, v.w) : cvt_rn_bf16x2(v.x, v.y))
                         : cvt_rn_bf16x2(a_at(m, k), a_at(m, k + 1));
        }
#pragma unroll
      for (int j = 0; j < NI; ++j)
#pragma unroll
        for (int r = 0; r < 2; ++r) {
          int n = wn + j * 8 + g, k = 2 * t + r * 8;
          const float4& v = bv[j];
          b[j][r] = KVEC ? (r ? cvt_rn_bf16x2(v.z, v.w) : cvt_rn_bf16x2(v.x, v.y))
                         : cvt_rn_bf16x2(b_at(k, n), b_at(k + 1, n));
        }
#pragma unroll
      for (int i = 0; i < MI; ++i)
#pragma unroll
        for (int j = 0; j < NI; ++j) mma_m16n8k16_bf16(acc[i][j], a[i], b[j], acc[i][j]);
    } else {
#pragma unroll
      for (int kk = 0; kk < BK; kk += 8) {
        uint32_t a[MI][4], b[NI][2], a_lo[MI][4], b_lo[NI][2];
        // KVEC: logical k (t, t+4) of the sub-step kk = 8s are physical 4t + 2s, 4t + 2s + 1.
        const bool hi = kk != 0;
#pragma unroll
        for (int i = 0; i < MI; ++i)
#pragma unroll
          for (int r = 0; r < 4; ++r) {
            const float4& v = av[i][r & 1];
            float x = KVEC ? (r >> 1 ? (hi ? v.w : v.y) : (hi ? v.z : v.x))
                           : a_at(wm + i * 16 + g + (r & 1) * 8, kk + t + (r >> 1) * 4);
            a[i][r] = cvt_rna_tf32(x);
            if (PREC == kGemmTc3xTF32) a_lo[i][r] = cvt_rna_tf32(x - __uint_as_float(a[i][r]));
          }
#pragma unroll
        for (int j = 0; j < NI; ++j)
#pragma unroll
          for (int r = 0; r < 2; ++r) {
            const float4& v = bv[j];
            float x = KVEC ? (r ? (hi ? v.w : v.y) : (hi ? v.z : v.x)) : b_at(kk + t + r * 4, wn + j * 8 + g);
            b[j][r] = cvt_rna_tf32(x);
            if (PREC == kGemmTc3xTF32) b_lo[j][r] = cvt_rna_tf32(x - __uint_as_float(b[j][r]));
          }
#pragma unroll
        for (int i = 0; i < MI; ++i)
#pragma unroll
          for (int j = 0; j < NI; ++j) {
            if (PREC == kGemmTc3xTF32) {
              mma_m16n8k8_tf32(acc[i][j], a_lo[i], b[j], acc[i][j]);
              mma_m16n8k8_tf32(acc[i][j], a[i], b_lo[j], acc[i][j]);
            }
            mma_m16n8k8_tf32(acc[i][j], a[i], b[j], acc[i][j]);
          }
      }
    }
    // The copy overwrites the stage read in step kt - 1, which every thread finished before
    // this step's barrier.
    if (kt + S - 1 < ktiles) load(write_stage, kt + S - 1);
    cp_async_commit_group();
    read_stage = read_stage == S - 1 ? 0 : read_stage + 1;
    write_stage = write_stage == S - 1 ? 0 : write_stage + 1;
  }

  // Epilogue: acc[i][j][r] is row wm + 16 i + g + 8 (r / 2), col wn + 8 j + 2 t + r % 2.
#pragma unroll
  for (int i = 0; i < MI; ++i)
#pragma unroll
    for (int r2 = 0; r2 < 2; ++r2) {
      int m = m0 + wm + i * 16 + g + r2 * 8;
      if (m >= M) continue;
#pragma unroll
      for (int j = 0; j < NI; ++j)
#pragma unroll
        for (int c = 0; c < 2; ++c) {
          int n = n0 + wn + j * 8 + 2 * t + c;
          if (n >= N) continue;
          float v = alpha * acc[i][j][r2 * 2 + c];
          float* out = C + (long long)m * N + n;
          if (beta != 0.f) v = fmaf(beta, *out, v);
          if (bias) v += bias[n];
          if (relu) v = (v <= 0.f) ? 0.f : v;
          *out = v;
        }
    }
}

}  // namespace ccn
