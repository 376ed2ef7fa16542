// Forward convolution on tensor cores: the implicit GEMM of conv_fwd.cuh (NHWC x KRSC ->
// NPQK, per group M = N*P*Q, Ngemm = K/g, Kgemm = R*S*C/g, k = (r*S + s)*C/g + c) through
// the main loop of tc_mainloop.cuh, with the operands rounded as `PREC` (tf32, 3xtf32,
// bf16: DESIGN.md §10, the semantics of gemm_tc) and the bias and optional ReLU fused
// into the epilogue.
//
// conv_tc_fwd_kernel1<PREC, VEC>: TcTile<128, 64, 2, 2, A [m][k], B [n][k]>: 128 threads,
// block tile 128 output pixels x 64 filters, warp tile 64 x 32, K step 16, 3 stages; 3xtf32
// with 16-byte copies: TcTile<64, 64, 2, 2, ...>, warp tile 32 x 32 (ConvTcFwdTile).
// Grid: x = M tiles, y = Ngemm tiles, z = group.
//   A (gathered from x): VEC (C/g % 4 == 0, x and w 16-byte aligned): thread tid copies
//   the tap quad k0 + 4 (tid % 4) .. + 3 (four channels of one (r, s)) of rows tid / 4 +
//   32 e (e < BM / 32) with 16-byte cp.async. !VEC (conv1's C = 3, or unaligned arrays): thread
//   tid copies the 16 taps of row tid with 4-byte cp.async. The rows' receptive-field
//   origins are decoded once before the K loop; the tap is a ConvTcTap (conv_tc_tap.cuh)
//   advanced per copy or per K step with adds and compares (no division in the loop).
//   B (w): the group's [K/g, R*S*C/g] filter matrix, a plain row-major copy
//   (gemm_tc_copy_tile).
//   Everything outside the image, past M, K/g or Kgemm is zero-filled (src-size 0).
// Deterministic: every output is one thread's fixed-order sum over k ascending.
// Preconditions (checked by conv2d_tc): the shape from make_conv_shape; y does not alias
// x, w or b; sm_80 or newer.
#pragma once

#include "conv.h"
// <...>: a mutated copy put first on the include path shadows it (the planted-bug tests).
#include <conv_tc_tap.cuh>
#include "conv_tile.cuh"
#include "gemm_tc.cuh"

namespace ccn {

// Where row m of the forward GEMM (output pixel (n, p, q)) reads its receptive field:
// image n offset to group grp's first channel, and the field's top-left input pixel
// (h0, w0); a row past M gets an origin that is never in range (as conv_fwd.cuh).
__device__ __forceinline__ void conv_tc_fwd_row_origin(const ConvShape& g, const float* x, int grp, int m, int M,
                                                       const float*& xrow, int& h0, int& w0) {
  xrow = x;
  h0 = kConvOffImage;
  w0 = 0;
  if (m < M) {
    int n = m / g.pq, pq = m - n * g.pq;
    int p = pq / g.q, q = pq - p * g.q;
    xrow = x + (long long)n * g.h * g.w * g.c + (long long)grp * g.cg;
    h0 = p * g.stride - g.pad_top;
    w0 = q * g.stride - g.pad_left;
  }
}

// 3xtf32 with 16-byte copies runs a 64-row block tile (warp tile 32 x 32, 2 x 4 mma
// tiles): its split operands (big and small parts of every fragment) and 64 accumulators
// of a 64 x 32 warp tile took 175 registers (2 blocks per SM); half the accumulators fit
// in 128 without spills.
template <int PREC, bool VEC>
using ConvTcFwdTile = TcTile<(PREC == kGemmTc3xTF32 && VEC) ? 64 : 128, 64, 2, 2, false, true, PREC>;
constexpr int kConvTcThreads = 128;

template <int PREC, bool VEC>
__global__ void __launch_bounds__(kConvTcThreads)
    conv_tc_fwd_kernel1(const float* __restrict__ x, const float* __restrict__ w, const float* __restrict__ bias,
                        float* __restrict__ y, ConvShape g, bool relu) {
  using T = ConvTcFwdTile<PREC, VEC>;
  constexpr int BM = T::BM, BN = T::BN, BK = T::BK, LDA = T::LDA, LDB = T::LDB;
  static_assert(T::THREADS == kConvTcThreads && (VEC || BM == kConvTcThreads) && kConvTcThreads == kGemmTcThreads,
                "loaders: VEC copies rows tid / 4 + 32 e, !VEC row tid");
  CCN_DYNAMIC_SHARED(float, smem);
  const int tid = threadIdx.x, grp = blockIdx.z;
  const int m0 = blockIdx.x * BM, n0 = blockIdx.y * BN;
  const int M = static_cast<int>(g.npq), Kgemm = g.rscg;
  const float* wg = w + (long long)grp * g.kg * Kgemm;

  // The A rows this thread copies: VEC rows tid / 4 + 32 e, else row tid. corner: the
  // offset in x of the row's receptive-field corner (h0, w0), channel 0 of the group (used
  // only where the tap lands in the image).
  constexpr int ROWS = VEC ? BM / 32 : 1;
  long long corner[ROWS];
  int h0[ROWS], w0[ROWS];
#pragma unroll
  for (int e = 0; e < ROWS; ++e) {
    const float* xrow;
    conv_tc_fwd_row_origin(g, x, grp, m0 + (VEC ? tid / 4 + 32 * e : tid), M, xrow, h0[e], w0[e]);
    corner[e] = (xrow - x) + ((long long)h0[e] * g.w + w0[e]) * g.c;
  }
  // The tap of the next column to copy, at offset (r*W + s)*C + c from the corner: VEC the
  // quad 4 (tid % 4) of tile kt, moved 16 columns per K step; !VEC column 16 kt + kk,
  // moved one column per copy. load() is called for kt = 0, 1, 2, ... in order.
  constexpr int D = VEC ? BK : 1;  // columns per advance
  ConvTcTap tap;
  tap.start(VEC ? 4 * (tid % 4) : 0, g.cg, g.s, g.w * g.c, g.c, 1);
  // d columns on: the channels wrap into the next filter column (offset + C - C/g), the
  // columns into the next filter row (offset + (W - S)*C).
  auto advance = [&]() { tap.advance<D == 1>(D, g.cg, g.s, D, g.c - g.cg, (g.w - g.s) * g.c); };

  auto load = [&](float* sa, float* sb, int kt) {
    const int k0 = kt * BK;
    if (VEC) {
      const bool k_valid = k0 + 4 * (tid % 4) < Kgemm;  // the quad shares (r, s): C/g % 4 == 0
#pragma unroll
      for (int e = 0; e < ROWS; ++e) {
        bool in = k_valid && conv_in_range(h0[e] + tap.r, g.h) && conv_in_range(w0[e] + tap.s, g.w);
        cp_async_16(sa + (tid / 4 + 32 * e) * LDA + 4 * (tid % 4), in ? x + (corner[e] + tap.off) : x, in ? 16 : 0);
      }
      advance();
    } else {
#pragma unroll
      for (int kk = 0; kk < BK; ++kk) {
        bool in = k0 + kk < Kgemm && conv_in_range(h0[0] + tap.r, g.h) && conv_in_range(w0[0] + tap.s, g.w);
        cp_async_4(sa + tid * LDA + kk, in ? x + (corner[0] + tap.off) : x, in ? 4 : 0);
        advance();
      }
    }
    gemm_tc_copy_tile<BN, BK, LDB, VEC>(sb, wg, n0, k0, g.kg, Kgemm, tid);
  };
  float acc[T::MI][T::NI][4];
  tc_mainloop<T>(acc, smem, 0, (Kgemm + BK - 1) / BK, load);

  tc_epilogue<T>(acc, [&](int mt, int nt, float v) {
    int m = m0 + mt, n = n0 + nt;
    if (m >= M || n >= g.kg) return;
    if (bias) v += bias[grp * g.kg + n];
    if (relu) v = (v <= 0.f) ? 0.f : v;
    y[(long long)m * g.k + grp * g.kg + n] = v;
  });
}

}  // namespace ccn
