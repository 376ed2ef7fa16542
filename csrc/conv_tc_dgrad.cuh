// Convolution dgrad on tensor cores: dx = the gradient of conv with respect to x as an
// implicit GEMM through tc_mainloop.cuh, operands rounded as `PREC` (tf32, 3xtf32, bf16).
//
// Per group (dy: N,P,Q,K; w: K,R,S,C/g; dx: N,H,W,C):
//   M = N*H*W (input pixels), Ngemm = C/g (channels), Kgemm = R*S*K/g with
//   k = (r*S + s)*K/g + j (the filter's tap, then the group's filter j),
//   A[m, k] = dy[n, p, q, g*K/g + j] where h + pad_top - r = p*stride and
//             w + pad_left - s = q*stride with 0 <= p < P, 0 <= q < Q; else 0,
//   B[k, c] = w[g*K/g + j, r, s, c],
//   dx[n, h, w, g*C/g + c] = sum_k A[m, k] B[k, c].
// A stride > 1 is the same GEMM with the taps that do not land on an output position
// zero-filled (a gather that reads nothing): correct for every stride, at the cost of
// stride^2 more K steps than the nonzero products need (conv1's dgrad, stride 4, is never
// needed in training: its input is the data).
//
// conv_tc_dgrad_kernel1<PREC, VEC>: TcTile<128, 64, 2, 2, A [m][k], B [k][n]>: 128
// threads, block tile 128 input pixels x 64 channels, warp tile 64 x 32, K step 16, 3
// stages. Grid: x = M tiles, y = Ngemm tiles, z = group.
//   A (gathered from dy): VEC (K/g % 4 == 0 and C/g % 4 == 0, dy and w 16-byte aligned):
//   thread tid copies the quad k0 + 4 (tid % 4) .. + 3 (four filters of one tap) of rows
//   tid / 4 + 32 e (e < 4), 16-byte cp.async; !VEC: the 16 taps of row tid, 4-byte
//   cp.async.
//   B (w): row k of the tile is the C/g channels of filter j at tap (r, s), contiguous in
//   w: VEC 16-byte copies (2 per thread), else 4-byte (8 per thread).
//   Every tap (r, s, j) of A and B is a ConvTcTap (conv_tc_tap.cuh) advanced with adds
//   and compares: no division by a run-time value in the K loop.
// Deterministic: every output is one thread's fixed-order sum over k ascending.
// Preconditions (checked by conv2d_dgrad_tc): the shape from make_conv_shape; dx does not
// alias dy or w; sm_80 or newer.
#pragma once

#include "conv.h"
// <...>: a mutated copy put first on the include path shadows it (the planted-bug tests).
#include <conv_tc_tap.cuh>
#include "conv_tile.cuh"
// <...>: a mutated copy put first on the include path shadows it (the planted-bug tests).
#include <tc_mainloop.cuh>

namespace ccn {

template <int PREC>
using ConvTcDgradTile = TcTile<128, 64, 2, 2, false, false, PREC>;
constexpr int kConvTcDgradThreads = 128;

// Row m of the dgrad GEMM (input pixel (n, h, w)): image n of dy offset to the group's
// first filter, and (h + pad_top, w + pad_left), from which a tap (r, s) subtracts to get
// the output position times the stride. A row past M gets a base that stays negative.
__device__ __forceinline__ void conv_tc_dgrad_row(const ConvShape& g, const float* dy, int grp, int m, int M,
                                                  const float*& dyrow, int& hb, int& wb) {
  dyrow = dy;
  hb = -1;
  wb = -1;
  if (m < M) {
    int hw = g.h * g.w;
    int n = m / hw, rem = m - n * hw;
    int h = rem / g.w, ww = rem - h * g.w;
    dyrow = dy + (long long)n * g.pq * g.k + (long long)grp * g.kg;
    hb = h + g.pad_top;
    wb = ww + g.pad_left;
  }
}

// The offset in the dy image of output position (hb - r, wb - s) / stride, or -1 when the
// tap lands between output positions or outside the output.
__device__ __forceinline__ long long conv_tc_dgrad_tap(const ConvShape& g, int hb, int wb, int r, int s) {
  int ph = hb - r, pw = wb - s;
  if (ph < 0 || pw < 0) return -1;
  if (g.stride != 1) {
    if (ph % g.stride || pw % g.stride) return -1;
    ph /= g.stride;
    pw /= g.stride;
  }
  if (ph >= g.p || pw >= g.q) return -1;
  return ((long long)ph * g.q + pw) * g.k;
}

template <int PREC, bool VEC>
__global__ void __launch_bounds__(kConvTcDgradThreads)
    conv_tc_dgrad_kernel1(const float* __restrict__ dy, const float* __restrict__ w, float* __restrict__ dx,
                          ConvShape g) {
  using T = ConvTcDgradTile<PREC>;
  constexpr int BM = T::BM, BN = T::BN, BK = T::BK, LDA = T::LDA, LDB = T::LDB;
  static_assert(T::THREADS == kConvTcDgradThreads && BM == kConvTcDgradThreads, "loaders");
  CCN_DYNAMIC_SHARED(float, smem);
  const int tid = threadIdx.x, grp = blockIdx.z;
  const int m0 = blockIdx.x * BM, n0 = blockIdx.y * BN;
  const int M = static_cast<int>(g.nhw), Kgemm = g.rs * g.kg;
  const long long filter = (long long)g.rs * g.cg;  // floats per filter of w
  const float* wg = w + (long long)grp * g.kg * filter;

  constexpr int ROWS = VEC ? BM / 32 : 1;
  const float* dyrow[ROWS];
  int hb[ROWS], wb[ROWS];
#pragma unroll
  for (int e = 0; e < ROWS; ++e)
    conv_tc_dgrad_row(g, dy, grp, m0 + (VEC ? tid / 4 + 32 * e : tid), M, dyrow[e], hb[e], wb[e]);

  // The taps of the next columns to copy (conv_tc_tap.cuh; load() is called for kt = 0, 1,
  // 2, ... in order): A's k = (r*S + s)*Kg + j, VEC the quad 4 (tid % 4) of tile kt moved
  // 16 columns per K step, !VEC column 16 kt + kk moved one per copy; B's rows, VEC
  // tid / 16 + 8 i (i < 2) moved 16 per K step, !VEC tid / 64 + 2 i (i < 8) moved 2 per
  // copy, each at offset j*filter + (r*S + s)*C/g in the group's filters.
  constexpr int DA = VEC ? BK : 1, DB = VEC ? BK : 2;  // columns / rows per advance
  constexpr int B_WALKERS = VEC ? 2 : 1;
  ConvTcTap a_tap, b_tap[B_WALKERS];
  a_tap.start(VEC ? 4 * (tid % 4) : 0, g.kg, g.s, 0, 0, 0);
#pragma unroll
  for (int i = 0; i < B_WALKERS; ++i)
    b_tap[i].start(VEC ? tid / 16 + 8 * i : tid / 64, g.kg, g.s, g.s * g.cg, g.cg, g.rscg);
  auto advance_a = [&]() { a_tap.advance<DA == 1>(DA, g.kg, g.s, 0, 0, 0); };
  // B's offset: DB filters on (DB*R*S*C/g), and back K/g filters plus one tap when j wraps.
  auto advance_b = [&](ConvTcTap& t) { t.advance(DB, g.kg, g.s, DB * g.rscg, g.cg - g.kg * g.rscg, 0); };

  auto load = [&](float* sa, float* sb, int kt) {
    const int k0 = kt * BK;
    if (VEC) {
      const bool k_valid = k0 + 4 * (tid % 4) < Kgemm;  // the quad shares (r, s): K/g % 4 == 0
#pragma unroll
      for (int e = 0; e < ROWS; ++e) {
        long long off = k_valid ? conv_tc_dgrad_tap(g, hb[e], wb[e], a_tap.r, a_tap.s) : -1;
        cp_async_16(sa + (tid / 4 + 32 * e) * LDA + 4 * (tid % 4), off >= 0 ? dyrow[e] + off + a_tap.c : dy,
                    off >= 0 ? 16 : 0);
      }
      advance_a();
      // B: rows tid / 16 + 8 i of the tile, channels n0 + 4 (tid % 16) .. + 3.
#pragma unroll
      for (int i = 0; i < 2; ++i) {
        int kr = k0 + tid / 16 + 8 * i, c = n0 + 4 * (tid % 16);
        bool in = kr < Kgemm && c < g.cg;  // C/g % 4 == 0: a quad is all in or all out
        cp_async_16(sb + (tid / 16 + 8 * i) * LDB + 4 * (tid % 16), in ? wg + (b_tap[i].off + c) : w, in ? 16 : 0);
        advance_b(b_tap[i]);
      }
    } else {
#pragma unroll
      for (int kk = 0; kk < BK; ++kk) {
        long long off = k0 + kk < Kgemm ? conv_tc_dgrad_tap(g, hb[0], wb[0], a_tap.r, a_tap.s) : -1;
        cp_async_4(sa + tid * LDA + kk, off >= 0 ? dyrow[0] + off + a_tap.c : dy, off >= 0 ? 4 : 0);
        advance_a();
      }
      // B: rows tid / 64 + 2 i of the tile, channel n0 + tid % 64.
#pragma unroll
      for (int i = 0; i < 8; ++i) {
        int kr = k0 + tid / 64 + 2 * i, c = n0 + tid % 64;
        bool in = kr < Kgemm && c < g.cg;
        cp_async_4(sb + (tid / 64 + 2 * i) * LDB + tid % 64, in ? wg + (b_tap[0].off + c) : w, in ? 4 : 0);
        advance_b(b_tap[0]);
      }
    }
  };
  float acc[T::MI][T::NI][4];
  tc_mainloop<T>(acc, smem, 0, (Kgemm + BK - 1) / BK, load);

  tc_epilogue<T>(acc, [&](int mt, int nt, float v) {
    int m = m0 + mt, n = n0 + nt;
    if (m >= M || n >= g.cg) return;
    dx[(long long)m * g.c + grp * g.cg + n] = v;
  });
}

}  // namespace ccn
