// The main loop shared by the tensor-core kernels (gemm_tc.cuh, conv_tc_*.cuh): shared-memory
// stages filled by cp.async, the fragment reads with their operand rounding, the MMAs and
// the accumulator-to-output mapping. What differs between kernels is only the global ->
// shared tile loader (a functor: a plain matrix copy for the GEMM, gathers from the
// NHWC/KRSC tensors for the implicit-GEMM convolutions), in the manner of CUTLASS's tile
// iterators.
//
// TcTile<BM, BN, WARPS_M, WARPS_N, TRANS_A, TRANS_B, PREC>: block tile BM x BN, K step 16,
// WARPS_M x WARPS_N warps, warp tile WM x WN = MI x NI mma tiles of 16 x 8, float32
// accumulators.
// PREC:
//   kGemmTcTF32   mma.m16n8k8.tf32, operands cvt.rna.tf32 when the fragments are read;
//   kGemmTc3xTF32 each operand split x = big + small, big = cvt.rna.tf32(x),
//           small = cvt.rna.tf32(x - big); three mma per product, small terms first:
//           D += a_small b_big; D += a_big b_small; D += a_big b_big (a_small b_small,
//           ~2^-22 relative, is dropped): float32-level accuracy;
//   kGemmTcBF16 mma.m16n8k16.bf16, operands cvt.rn.bf16x2 (pairs along k) when the fragments
//           are read.
// Shared tiles keep the global layout (a 16-byte copy moves 4 consecutive elements along
// the contiguous dimension): A is [m][k] (row stride BK + 4) or, when TRANS_A, [k][m]
// (stride BM + PAD_K); B is [n][k] (stride BK + 4) when TRANS_B, else [k][n] (stride
// BN + PAD_K). The paddings make the k-major fragment reads conflict-free: tf32 lanes
// (g, t) read rows t (and t + 4) at column g, t * (BN + 8) + g, 32 distinct banks (BM, BN
// multiples of 8: (BN + 8) % 32 is 8 or 24); bf16 lanes read rows 2t, 2t + 1 (+ 8), which
// with + 8 fall 2t * (BN + 8) + g = 16t + g (mod 32): rows 0 and 4 share banks (2-way
// conflicts), so bf16 pads by 4: 2t * (BN + 4) + g = 8t + g (mod 32), 32 distinct banks
// (checked at compile time: tc_kmajor_conflict_free). The [m][k] reads, g * 20 + t, are
// conflict-free for tf32.
// KVEC (3xtf32 and bf16 with A [m][k] and B [n][k]): rows unpadded (stride BK = 16) and
// each lane reads k = 4t..4t+3 of a fragment row with one 128-bit load (8 lanes of a
// phase read 8 distinct 16-byte bank groups). The mma's k order is then a permutation of
// the tile's, the same for A and B, so the products are unchanged: bf16 logical pairs
// (2t, 2t+1), (2t+8, 2t+9) are physical 4t, 4t+1 and 4t+2, 4t+3; tf32 logical (t, t+4)
// of sub-step s are physical 4t+2s, 4t+2s+1. Not for tf32: there each element feeds one
// conversion, which then needs a register move out of the loaded quad (measured on the
// sm_90 SASS of gemm_tc: 234 instructions per K step against 202 with 32-bit loads);
// bf16 and 3xtf32 gain (114 vs 123, 366 vs 390).
//
// Pipeline (tc_mainloop): kTcStages stages. Each K step: wait for the oldest stage, one
// barrier (its data from every thread is visible, and every thread is done with the stage
// the next copy overwrites), the MMAs, the copy of the tile kTcStages-1 steps ahead,
// commit. Empty commit groups past the last tile keep the count of groups per step fixed,
// so wait_group<kTcStages - 2> always covers the tile about to be read. Loaders zero-fill
// everything outside their operand (src-size 0), so the MMAs need no edge branches.
// Every accumulator is one thread's fixed-order sum over the K steps (ascending), so
// results are deterministic.
#pragma once

#include "common.h"
#include "ptx.cuh"

namespace ccn {

// PREC values (an int template parameter keeps the kernels' names plain in the SASS).
constexpr int kGemmTcTF32 = 0, kGemmTc3xTF32 = 1, kGemmTcBF16 = 2;
constexpr int kTcBK = 16, kTcStages = 3;

// True when lanes (g, t) of a warp reading row kstep * t of a k-major shared tile with row
// stride ld, at column g, hit 32 distinct banks (any further row offset shifts every lane's
// bank alike).
__host__ __device__ constexpr bool tc_kmajor_conflict_free(int ld, int kstep) {
  unsigned used = 0;
  for (int lane = 0; lane < 32; ++lane) {
    const unsigned bank = static_cast<unsigned>((kstep * (lane & 3) * ld + (lane >> 2)) % 32);
    if ((used >> bank) & 1u) return false;
    used |= 1u << bank;
  }
  return true;
}

template <int BM_, int BN_, int WARPS_M_, int WARPS_N_, bool TRANS_A_, bool TRANS_B_, int PREC_>
struct TcTile {
  static constexpr int BM = BM_, BN = BN_, BK = kTcBK, S = kTcStages;
  static constexpr int WARPS_M = WARPS_M_, WARPS_N = WARPS_N_, THREADS = 32 * WARPS_M_ * WARPS_N_;
  static constexpr bool TRANS_A = TRANS_A_, TRANS_B = TRANS_B_;
  static constexpr int PREC = PREC_;
  static constexpr int WM = BM / WARPS_M, WN = BN / WARPS_N, MI = WM / 16, NI = WN / 8;
  static constexpr bool KVEC = !TRANS_A && TRANS_B && PREC != kGemmTcTF32;
  static constexpr int PAD_K = PREC == kGemmTcBF16 ? 4 : 8, KSTEP = PREC == kGemmTcBF16 ? 2 : 1;
  static constexpr int LDA = TRANS_A ? BM + PAD_K : (KVEC ? BK : BK + 4);
  static constexpr int LDB = TRANS_B ? (KVEC ? BK : BK + 4) : BN + PAD_K;
  static_assert(!TRANS_A || tc_kmajor_conflict_free(LDA, KSTEP), "A fragment reads would conflict");
  static_assert(TRANS_B || tc_kmajor_conflict_free(LDB, KSTEP), "B fragment reads would conflict");
  // Stage sizes keep the widest padded row stride even where KVEC or bf16 use less (one
  // formula for the launchers' shared-memory size, whatever the precision).
  static constexpr int A_STAGE = TRANS_A ? BK * (BM + 8) : BM * (BK + 4);
  static constexpr int B_STAGE = TRANS_B ? BN * (BK + 4) : BK * (BN + 8);
  static constexpr int SMEM_FLOATS = S * (A_STAGE + B_STAGE);
  static_assert(WM % 16 == 0 && WN % 8 == 0 && WM * WARPS_M == BM && WN * WARPS_N == BN, "warp tiling");
};

// One K step of the warp tile at (wm, wn) from the shared stages a_s, b_s.
template <class T>
__device__ __forceinline__ void tc_mma_stage(float (&acc)[T::MI][T::NI][4], const float* a_s, const float* b_s,
                                             int wm, int wn, int g, int t) {
  constexpr int MI = T::MI, NI = T::NI, LDA = T::LDA, LDB = T::LDB, BK = T::BK, PREC = T::PREC;
  constexpr bool KVEC = T::KVEC, TRANS_A = T::TRANS_A, TRANS_B = T::TRANS_B;
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
}

// The pipelined K loop over tiles [kt_begin, kt_end) into acc (zeroed first). smem holds
// T::SMEM_FLOATS floats. load(sA_stage, sB_stage, kt) issues the cp.async copies of K tile
// kt into one stage (A_STAGE / B_STAGE floats), zero-filling what lies outside the operands;
// it must not commit or wait.
template <class T, class Load>
__device__ __forceinline__ void tc_mainloop(float (&acc)[T::MI][T::NI][4], float* smem, int kt_begin, int kt_end,
                                            Load&& load) {
  constexpr int S = T::S, A_STAGE = T::A_STAGE, B_STAGE = T::B_STAGE;
  float* sA = smem;                // [S][A_STAGE]
  float* sB = smem + S * A_STAGE;  // [S][B_STAGE]
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane >> 2, t = lane & 3;
  const int wm = (warp / T::WARPS_N) * T::WM, wn = (warp % T::WARPS_N) * T::WN;

  for (int s = 0; s < S - 1; ++s) {
    if (kt_begin + s < kt_end) load(sA + s * A_STAGE, sB + s * B_STAGE, kt_begin + s);
    cp_async_commit_group();
  }

#pragma unroll
  for (int i = 0; i < T::MI; ++i)
#pragma unroll
    for (int j = 0; j < T::NI; ++j)
#pragma unroll
      for (int r = 0; r < 4; ++r) acc[i][j][r] = 0.f;

  // Stage counters instead of kt % S: no division by 3 in the main loop.
  int read_stage = 0, write_stage = S - 1;
  for (int kt = kt_begin; kt < kt_end; ++kt) {
    cp_async_wait_group<S - 2>();
    __syncthreads();
    tc_mma_stage<T>(acc, sA + read_stage * A_STAGE, sB + read_stage * B_STAGE, wm, wn, g, t);
    // The copy overwrites the stage read in step kt - 1, which every thread finished before
    // this step's barrier.
    if (kt + S - 1 < kt_end) load(sA + write_stage * A_STAGE, sB + write_stage * B_STAGE, kt + S - 1);
    cp_async_commit_group();
    read_stage = read_stage == S - 1 ? 0 : read_stage + 1;
    write_stage = write_stage == S - 1 ? 0 : write_stage + 1;
  }
}

// Calls store(m, n, v) for every accumulator of this thread: v is output (m, n) of the
// block tile (tile-relative). acc[i][j][r] is row wm + 16 i + g + 8 (r / 2), col
// wn + 8 j + 2 t + r % 2. Columns 2t, 2t+1 of one row are consecutive calls.
template <class T, class Store>
__device__ __forceinline__ void tc_epilogue(const float (&acc)[T::MI][T::NI][4], Store&& store) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane >> 2, t = lane & 3;
  const int wm = (warp / T::WARPS_N) * T::WM, wn = (warp % T::WARPS_N) * T::WN;
#pragma unroll
  for (int i = 0; i < T::MI; ++i)
#pragma unroll
    for (int r2 = 0; r2 < 2; ++r2)
#pragma unroll
      for (int j = 0; j < T::NI; ++j)
#pragma unroll
        for (int c = 0; c < 2; ++c) {
          const int n = wn + j * 8 + 2 * t + c;
          store(wm + i * 16 + g + r2 * 8, n, acc[i][j][r2 * 2 + c]);
        }
}

}  // namespace ccn
