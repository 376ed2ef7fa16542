// Convolution wgrad on tensor cores: dw = the gradient of conv with respect to w as an
// implicit GEMM through tc_mainloop.cuh, operands rounded as `PREC` (tf32, 3xtf32, bf16),
// with a deterministic split-K over N*P*Q; and the bias gradient db.
//
// Per group (x: N,H,W,C; dy: N,P,Q,K; dw: K,R,S,C/g):
//   M = K/g (filters), Ngemm = R*S*C/g (taps, the KRSC order), Kgemm = N*P*Q,
//   A[k, j] = dy[n, p, q, g*K/g + j] with k = (n*P + p)*Q + q (stored [k][m]: TRANS_A),
//   B[k, t] = x[n, p*stride + r - pad_top, q*stride + s - pad_left, g*C/g + c] (0 outside)
//             with t = (r*S + s)*C/g + c,
//   dw[g*K/g + j, r, s, c] = sum_k A[k, j] B[k, t].
// Split-K: the N*P*Q rows are cut into `chunks` chunks of chunk_rows rows (a multiple of
// the K step; conv2d_wgrad_tc_plan, a function of the shape only); chunk z's partial dw
// goes to workspace slab z and conv_sum_partials_kernel1 adds the slabs in chunk order.
// Every dw element is therefore one fixed sequence of float32 additions: bit-identical on
// every run and in every thread order (no atomics). One chunk writes dw directly.
//
// conv_tc_wgrad_kernel1<PREC, VEC>: TcTile<64, 128, 2, 2, A [k][m], B [k][n]>: 128
// threads, block tile 64 filters x 128 taps, warp tile 32 x 64, K step 16, 3 stages.
// Grid: x = Ngemm tiles, y = M tiles, z = chunk * groups + group.
//   A (dy, row-major [N*P*Q, K]): VEC (K/g % 4 == 0, C/g % 4 == 0, x and dy 16-byte
//   aligned) 16-byte copies, rows tid / 16 + 8 i, filters 4 (tid % 16) .. + 3; else
//   4-byte copies, rows tid / 64 + 2 i, filter tid % 64.
//   B (gathered from x): a thread's tap column is fixed for the whole K loop (decoded once):
//   VEC the quad 4 (tid % 32) .. + 3 (four channels of one (r, s)) of rows tid / 32 + 4 i;
//   else tap tid of all 16 rows, walking (n, p, q) incrementally from one decode per step.
// db and the chunk sums: the float32 wgrad's conv_bias_grad_kernel1 and
// conv_sum_partials_kernel1 (conv_wgrad_reduce.cuh, launched by conv_tc.cu through
// conv_bias_grad_partials and conv_sum_chunks).
// Preconditions (checked by conv2d_wgrad_tc): the shape from make_conv_shape; outputs do
// not alias inputs; sm_80 or newer.
#pragma once

#include "conv.h"
#include "conv_tile.cuh"
// <...>: a mutated copy put first on the include path shadows it (the planted-bug tests).
#include <tc_mainloop.cuh>

namespace ccn {

template <int PREC>
using ConvTcWgradTile = TcTile<64, 128, 2, 2, true, false, PREC>;
constexpr int kConvTcWgradThreads = 128;

// x offset of row kr = (n, p, q) of the wgrad GEMM at tap (r, s), channel offset c of the
// group, or -1 outside the image.
__device__ __forceinline__ long long conv_tc_wgrad_x_at(const ConvShape& g, int n, int p, int q, int r, int s) {
  int hh = p * g.stride - g.pad_top + r, ww = q * g.stride - g.pad_left + s;
  if (!conv_in_range(hh, g.h) || !conv_in_range(ww, g.w)) return -1;
  return (((long long)n * g.h + hh) * g.w + ww) * g.c;
}

template <int PREC, bool VEC>
__global__ void __launch_bounds__(kConvTcWgradThreads)
    conv_tc_wgrad_kernel1(const float* __restrict__ x, const float* __restrict__ dy, float* __restrict__ out,
                          ConvShape g, int chunk_rows, long long chunk_stride) {
  using T = ConvTcWgradTile<PREC>;
  constexpr int BM = T::BM, BN = T::BN, BK = T::BK, LDA = T::LDA, LDB = T::LDB;
  static_assert(T::THREADS == kConvTcWgradThreads && BN == kConvTcWgradThreads, "loaders");
  CCN_DYNAMIC_SHARED(float, smem);
  const int tid = threadIdx.x;
  const int grp = blockIdx.z % g.groups, chunk = blockIdx.z / g.groups;
  const int n0 = blockIdx.x * BN, m0 = blockIdx.y * BM;
  const int rows = static_cast<int>(g.npq), Ngemm = g.rscg;
  const float* dyg = dy + (long long)grp * g.kg;
  const float* xg = x + (long long)grp * g.cg;

  // This thread's B column (tap t = (r*S + s)*Cg + c), fixed for the whole K loop.
  const int tcol = n0 + (VEC ? 4 * (tid % 32) : tid);
  const bool t_valid = tcol < Ngemm;
  int tr = 0, ts = 0, tc = 0;
  if (t_valid) {
    int rs = tcol / g.cg;
    tc = tcol - rs * g.cg;
    tr = rs / g.s;
    ts = rs - tr * g.s;
  }

  auto load = [&](float* sa, float* sb, int kt) {
    const int k0 = kt * BK;
    if (VEC) {
#pragma unroll
      for (int i = 0; i < 2; ++i) {
        int kr = k0 + tid / 16 + 8 * i, j = m0 + 4 * (tid % 16);
        bool in = kr < rows && j < g.kg;  // K/g % 4 == 0: a quad is all in or all out
        cp_async_16(sa + (tid / 16 + 8 * i) * LDA + 4 * (tid % 16), in ? dyg + (long long)kr * g.k + j : dy,
                    in ? 16 : 0);
      }
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        int kr = k0 + tid / 32 + 4 * i;
        long long off = -1;
        if (t_valid && kr < rows) {
          int n = kr / g.pq, pq = kr - n * g.pq;
          int p = pq / g.q;
          off = conv_tc_wgrad_x_at(g, n, p, pq - p * g.q, tr, ts);
        }
        cp_async_16(sb + (tid / 32 + 4 * i) * LDB + 4 * (tid % 32), off >= 0 ? xg + off + tc : x, off >= 0 ? 16 : 0);
      }
    } else {
#pragma unroll
      for (int i = 0; i < 8; ++i) {
        int kr = k0 + tid / 64 + 2 * i, j = m0 + tid % 64;
        bool in = kr < rows && j < g.kg;
        cp_async_4(sa + (tid / 64 + 2 * i) * LDA + tid % 64, in ? dyg + (long long)kr * g.k + j : dy, in ? 4 : 0);
      }
      int n = 0, p = 0, q = 0;
      if (k0 < rows) {
        n = k0 / g.pq;
        int pq = k0 - n * g.pq;
        p = pq / g.q;
        q = pq - p * g.q;
      }
#pragma unroll
      for (int i = 0; i < BK; ++i) {
        long long off = t_valid && k0 + i < rows ? conv_tc_wgrad_x_at(g, n, p, q, tr, ts) : -1;
        cp_async_4(sb + i * LDB + tid, off >= 0 ? xg + off + tc : x, off >= 0 ? 4 : 0);
        if (++q == g.q) {  // next row k = (n*P + p)*Q + q
          q = 0;
          if (++p == g.p) {
            p = 0;
            ++n;
          }
        }
      }
    }
  };
  // This chunk's K tiles (chunk_rows is a multiple of BK).
  const int kt_begin = chunk * (chunk_rows / BK);
  const int kt_end = min((rows + BK - 1) / BK, kt_begin + chunk_rows / BK);
  float acc[T::MI][T::NI][4];
  tc_mainloop<T>(acc, smem, kt_begin, kt_end, load);

  float* o = out + chunk * chunk_stride;
  tc_epilogue<T>(acc, [&](int mt, int nt, float v) {
    int m = m0 + mt, n = n0 + nt;
    if (m >= g.kg || n >= Ngemm) return;
    o[(long long)(grp * g.kg + m) * Ngemm + n] = v;
  });
}

}  // namespace ccn
