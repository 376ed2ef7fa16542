// conv_dgrad_kernel2<BN> (fast path: K/g and C/g multiples of 4, C/g above 16, aligned;
// AlexNet conv2-5): a 128 x BN x 16 block tile with 8 x 8 outputs per thread, float4 shared
// reads and a 3-stage cp.async pipeline. The gradient of the convolution with respect to its
// input (dgrad) as the same implicit GEMM as conv_dgrad_kernel1 (conv_dgrad.cuh: per group
// and stride phase (a, b), M = the phase's N*Hph*Wph input pixels, Ngemm = C/g,
// Kgemm = Ru*Su*K/g with k = (u*Su + v)*K/g + f, A[m, k] = dy[n, p0 - u, q0 - v, g*K/g + f],
// B[k, c] = w[g*K/g + f, a + stride*u, b + stride*v, c]) on the design of conv_fwd_kernel2.
//
// Preconditions (conv_dgrad_kernel2_applies, checked by conv2d_dgrad): K/g % 4 == 0 and
// C/g % 4 == 0 (a 16-byte quad of k stays inside one tap, a quad of c inside the group),
// dy, w and dx 16-byte aligned, and the copies' element offsets fit int (N*P*Q*K,
// (R+1)*(Q+1)*K and (K/g + stride + 1)*R*S*C/g < 2^31; the group base of w and the
// epilogue's dx offsets are 64-bit).
//
// Block tile 128 x BN x 16, 2*BN threads, each owning an 8 x 8 register tile: rows
// {4 ty + i, 64 + 4 ty + i}, columns {4 tx + j, BN/2 + 4 tx + j} (i, j < 4), tx = tid %
// (BN/8), ty = tid / (BN/8). The thread count follows BN so every thread keeps 64
// accumulators (__launch_bounds__ caps them at 128 registers: 16 warps per SM for BN = 128
// and 64, 15 for 48 on sm_90). The launcher (conv_dgrad_tile_n) takes BN in {128, 64, 48}
// covering C/g with the fewest padded columns: AlexNet's C/g = 48 (conv2's input) -> 48,
// 192 (conv4, conv5) -> 64 x 3, 256 (conv3) -> 128, none padded (a 64-wide tile would pad
// 48 by a third, a 128-wide one 192 by a quarter).
//
// Shared memory, per stage (kDgrad2Stages = 3), both k-major as conv_fwd_kernel2's:
// A [16][128 + 4], B [16][BN + 4]. Per k a thread reads 2 float4s of A (its rows) and 2 of
// B (its columns): 4 LDS.128 per 64 FMAs. dy is contiguous along k (filters), so A is
// transposed on the way in: each thread copies a quad of 4 consecutive k of one pixel as
// four 4-byte cp.async into 4 rows of the stage (16-byte copies would land m-major, and an
// m-major A tile read as float4s along k needs 32 more live registers per thread: spills at
// 128). w is contiguous along c, so B moves in 16-byte copies.
//
// Loads: cp.async (csrc/ptx/cp_async.cuh), src-size 0 (zero fill) for taps outside dy, rows
// past M, k past Kgemm and channels past C/g. Thread tid copies the k quad lq = tid % 4 of A
// rows tid/4 + (BN/2)*e, and the c quads bq and bq + BN/8 of B row tid / (BN/8)
// (bq = tid % (BN/8)). The tap of each copied k is kept in incremental counters (f, v, u
// and the element offset they give), advanced by 16 per K step with adds and compares: no
// division by a run-time value inside the K loop.
//
// Pipeline (as gemm_tc.cuh): kDgrad2Stages - 1 tiles in flight before the loop; each K step
// waits for its tile (cp.async.wait_group<Stages - 2>), one __syncthreads (every thread's
// copies of the tile are visible, and every thread finished the step before, whose stage
// the next copy overwrites), the FMAs, then the copy of the tile Stages - 1 steps ahead and
// a commit (empty past the last tile, so the group count per step stays fixed).
//
// Every output is one thread's fmaf chain over k = 0, 1, ... (zeros past Kgemm), the order
// of conv_dgrad_kernel1: the two kernels give the same bits.
#pragma once

#include "conv.h"
#include "conv_tile.cuh"
#include "ptx/cp_async.cuh"

namespace ccn {

constexpr int kDgrad2BM = 128, kDgrad2Stages = 3;
constexpr int kDgrad2LdA = kDgrad2BM + kConvPad;  // A stage: [BK][BM + pad], k-major

template <int BN>
__host__ __device__ constexpr int dgrad2_threads() {
  return 2 * BN;
}
template <int BN>
__host__ __device__ constexpr int dgrad2_stage_floats() {
  return kConvBK * kDgrad2LdA + kConvBK * (BN + kConvPad);
}
template <int BN>
__host__ __device__ constexpr int dgrad2_smem_floats() {
  return kDgrad2Stages * dgrad2_stage_floats<BN>();
}

// The tap of one copied k, as counters: k = (u*su + v)*kg + f, and `off`, the element
// offset that tap adds (A: f - (u*Q + v)*K relative to the row's pixel (p0, q0); B: the
// filter element (f, r, s) of the group's filters). advance(d) moves k forward by d with
// adds and compares only (d <= 16 here; the loop runs once per wrapped filter block).
struct Dgrad2Tap {
  int k, f, u, v, off;
  // Offset changes: per filter step, per v step (after f wraps), per u step (after v wraps).
  __device__ __forceinline__ void advance(int d, int kg, int su, int df, int dv, int du) {
    k += d;
    f += d;
    off += d * df;
    while (f >= kg) {
      f -= kg;
      off += dv - kg * df;
      if (++v == su) {
        v = 0;
        ++u;
        off += du - su * dv;
      }
    }
  }
};

template <int BN>
__global__ void __launch_bounds__(2 * BN, 256 / BN)
    conv_dgrad_kernel2(const float* __restrict__ dy, const float* __restrict__ w, float* __restrict__ dx,
                       ConvShape g) {
  static_assert(BN % 8 == 0 && BN <= 128, "BN/2 columns per half in float4s; at most 256 threads");
  constexpr int BM = kDgrad2BM, BK = kConvBK, S = kDgrad2Stages, T = dgrad2_threads<BN>();
  constexpr int LDB = BN + kConvPad, A_STAGE = BK * kDgrad2LdA, STAGE = dgrad2_stage_floats<BN>();
  constexpr int A_STEP = T / 4, A_ROWS = (BM + A_STEP - 1) / A_STEP;  // A rows per thread
  constexpr int BQ = BN / 4;                                           // B column quads
  static_assert(T == dgrad2_threads<BN>() && T / (BQ / 2) == BK, "each thread copies 2 quads of one B row");
  CCN_DYNAMIC_SHARED(float, smem);  // [S][A stage | B stage]
  const int tid = threadIdx.x;
  const int tx = tid % (BN / 8), ty = tid / (BN / 8);
  const int st = g.stride, phases = st * st;
  const int grp = blockIdx.z / phases, phase = blockIdx.z - grp * phases;
  const int pa = phase / st, pb = phase - pa * st;
  // The phase's input pixels h = h_first + st*i (i < hph), w = w_first + st*j (j < wph).
  const int h_first = ((pa - g.pad_top) % st + st) % st, w_first = ((pb - g.pad_left) % st + st) % st;
  const int hph = h_first < g.h ? (g.h - h_first + st - 1) / st : 0;
  const int wph = w_first < g.w ? (g.w - w_first + st - 1) / st : 0;
  const int M = g.n * hph * wph;
  const int m0 = blockIdx.x * BM, n0 = blockIdx.y * BN;
  if (m0 >= M) return;  // the whole block: this phase has fewer pixels than the largest
  // The phase's taps: r = pa + st*u (u < ru), s = pb + st*v (v < su).
  const int ru = pa < g.r ? (g.r - pa + st - 1) / st : 0;
  const int su = pb < g.s ? (g.s - pb + st - 1) / st : 0;
  const int Kgemm = ru * su * g.kg;
  const int ktiles = (Kgemm + BK - 1) / BK;

  // A copies: k quad lq, rows lrow + A_STEP*e. Row m -> (p0, q0), the dy pixel its tap
  // u = v = 0 reads, and that pixel's element offset in dy (group base included; an int:
  // N*P*Q*K < 2^31 is a precondition). Never dereferenced unless the tap's pixel is in dy.
  const int lq = tid % 4, lrow = tid / 4;
  int arow[A_ROWS], p0[A_ROWS], q0[A_ROWS];
#pragma unroll
  for (int e = 0; e < A_ROWS; ++e) {
    const int row = lrow + A_STEP * e, m = m0 + row;
    if (row < BM && m < M) {
      const int hw = hph * wph;
      const int n = m / hw, rem = m - n * hw;
      const int i = rem / wph, j = rem - i * wph;
      p0[e] = (h_first + st * i + g.pad_top - pa) / st;
      q0[e] = (w_first + st * j + g.pad_left - pb) / st;
      arow[e] = (n * g.pq + p0[e] * g.q + q0[e]) * g.k + grp * g.kg;
    } else {
      arow[e] = 0;
      p0[e] = -1;  // p = p0 - u < 0 for every tap u >= 0: never copies
      q0[e] = 0;
    }
  }
  // A tap: f steps 1 element, v steps -K, u steps -Q*K.
  const int a_dv = -g.k, a_du = -g.q * g.k;
  Dgrad2Tap ta{0, 0, 0, 0, 0};
  ta.advance(4 * lq, g.kg, su, 1, a_dv, a_du);

  // B copies: row bk (k0 + bk), c quads bq and bq + BQ/2. f steps R*S*C/g elements, v
  // steps st*C/g (s += st), u steps st*S*C/g (r += st).
  const int bq = tid % (BQ / 2), bk = tid / (BQ / 2);
  const int c = n0 + 4 * bq;
  const bool c_valid[2] = {c < g.cg, c + BN / 2 < g.cg};
  const float* wgrp = w + (long long)grp * g.kg * g.rscg + (pa * g.s + pb) * g.cg + c;
  const int b_df = g.rscg, b_dv = st * g.cg, b_du = st * g.s * g.cg;
  Dgrad2Tap tb{0, 0, 0, 0, 0};
  tb.advance(bk, g.kg, su, b_df, b_dv, b_du);

  // Issue the copies of the next K tile into `stage`, then advance the counters by BK.
  auto load = [&](int stage) {
    float* As = smem + stage * STAGE;
    float* Bs = As + A_STAGE;
    const bool ka = ta.k < Kgemm;  // Kgemm % 4 == 0: a quad is all in or all out
#pragma unroll
    for (int e = 0; e < A_ROWS; ++e) {
      const int row = lrow + A_STEP * e;
      if (BM % A_STEP != 0 && row >= BM) break;
      const bool in = ka && conv_in_range(p0[e] - ta.u, g.p) && conv_in_range(q0[e] - ta.v, g.q);
      const float* src = dy + (in ? arow[e] + ta.off : 0);
      float* dst = As + 4 * lq * kDgrad2LdA + row;  // transposed: element t of the quad to k-row 4*lq + t
#pragma unroll
      for (int t = 0; t < 4; ++t) cp_async_4(dst + t * kDgrad2LdA, src + (in ? t : 0), in ? 4 : 0);
    }
    ta.advance(BK, g.kg, su, 1, a_dv, a_du);
    const bool kb = tb.k < Kgemm;
#pragma unroll
    for (int e = 0; e < 2; ++e) {
      const bool in = kb && c_valid[e];
      cp_async_16(Bs + bk * LDB + 4 * bq + e * (BN / 2), in ? wgrp + tb.off + e * (BN / 2) : w, in ? 16 : 0);
    }
    tb.advance(BK, g.kg, su, b_df, b_dv, b_du);
  };

#pragma unroll
  for (int s = 0; s < S - 1; ++s) {
    if (s < ktiles) load(s);
    cp_async_commit_group();
  }

  float acc[8][8];
  tile_zero(acc);

  // Stage counters instead of kt % S: no division in the main loop.
  int read_stage = 0, write_stage = S - 1;
  for (int kt = 0; kt < ktiles; ++kt) {
    cp_async_wait_group<S - 2>();  // this thread's copies of tile kt have landed
    __syncthreads();               // everyone's have, and everyone is done with tile kt - 1
    const float* As = smem + read_stage * STAGE;
    tile_fma_8x8<BK, kDgrad2LdA, LDB, BN / 2>(As, As + A_STAGE, acc, tx, ty);
    // Overwrites the stage of tile kt - 1, which every thread finished before the barrier.
    if (kt + S - 1 < ktiles) load(write_stage);
    cp_async_commit_group();
    read_stage = read_stage == S - 1 ? 0 : read_stage + 1;
    write_stage = write_stage == S - 1 ? 0 : write_stage + 1;
  }

  // Epilogue: register row i is tile row 4*ty + i (i < 4) or 64 + 4*ty + i - 4; register
  // columns 4j'..4j'+3 are channels n0 + 4*tx (j' = 0) or n0 + BN/2 + 4*tx (j' = 1), stored
  // as float4s (C/g % 4 == 0: a quad is all in or all out; dx rows are 16-byte aligned).
  const int hw = hph * wph;
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    const int m = m0 + (i < 4 ? 4 * ty + i : 64 + 4 * ty + i - 4);
    if (m >= M) continue;
    const int n = m / hw, rem = m - n * hw;
    const int ip = rem / wph, jp = rem - ip * wph;
    const int h = h_first + st * ip, ww = w_first + st * jp;
    float* dxrow = dx + (((long long)n * g.h + h) * g.w + ww) * g.c + (long long)grp * g.cg;
#pragma unroll
    for (int jq = 0; jq < 2; ++jq) {
      const int cc = n0 + jq * (BN / 2) + 4 * tx;
      if (cc < g.cg)
        *reinterpret_cast<float4*>(dxrow + cc) =
            make_float4(acc[i][4 * jq], acc[i][4 * jq + 1], acc[i][4 * jq + 2], acc[i][4 * jq + 3]);
    }
  }
}

}  // namespace ccn
