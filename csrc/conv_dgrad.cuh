// Gradient of the convolution with respect to its input ("dgrad", cuda-convnet's
// convImgActs) as an implicit GEMM (ARCHITECTURE.md §4). The math: conv2d_backward's dx in
// cuda_convnet/reference/conv.py.
//
// Input pixel (h, w) receives dy[p, q] through tap (r, s) exactly when
// h + pad_top - r = p*stride and w + pad_left - s = q*stride. So only taps with
// r = (h + pad_top) mod stride (mod stride) contribute: the input pixels split into
// stride x stride *phases* (a, b) = ((h + pad_top) mod stride, (w + pad_left) mod stride),
// and the pixels of one phase share one set of taps, r = a + stride*u, s = b + stride*v.
// Each phase is its own implicit GEMM with no wasted (misaligned) taps; for conv1 (11x11,
// stride 4) that is ~16x less work than testing the alignment of all R*S taps on load.
// Per group g and phase (a, b) (dy: N,P,Q,K; w: K,R,S,C/g; dx: N,H,W,C):
//   M = N * Hph * Wph (the phase's input pixels: h = h_first + stride*i, w likewise),
//   Ngemm = C/g (input channels), Kgemm = Ru * Su * K/g (Ru = ceil((R - a)/stride) taps
//   r = a, a + stride, ...; likewise Su), k = (u*Su + v)*K/g + f (tap-major, filter-minor:
//   a K step reads consecutive filters of one dy pixel, contiguous memory);
//   A[m, k] = dy[n, p0 - u, q0 - v, g*K/g + f]  (0 outside the output), where
//             (p0, q0) = ((h + pad_top - a)/stride, (w + pad_left - b)/stride);
//   B[k, c] = w[g*K/g + f, a + stride*u, b + stride*v, c];
//   dx[n, h, w, g*C/g + c] = sum_k A[m, k] B[k, c]. Every dx element is in exactly one
//   phase and written by it (zeros when the phase has no taps, e.g. stride > R).
//
// conv_dgrad_kernel1<BM, BN> (general; the fast path is conv_dgrad_kernel2 in
//   conv_dgrad2.cuh, with the same sums in the same order): a BM x BN x 16 tile of
//   conv_tile.cuh: 64 x 64, or 256 x 16 when C/g <= 16 (conv1's C = 3). Grid: x = M tiles
//   (of the largest phase; blocks past their phase's M return at once, before any
//   barrier), y = Ngemm tiles, z = group * stride^2 + phase.
//   A loads: column kk = tid % 16, rows tid / 16 + 16*e (e < BM/16); a row's (n, p0, q0)
//   is decoded once before the K loop, the tap (u, v, f) of column kk once per K step, so
//   a gather is two subtractions, a bounds test and a load.
//   B loads: column c = tid % BN (consecutive channels across a warp), rows
//   tid / BN + (256/BN)*e, each decoded into (u, v, f).
//   __syncthreads after the loads and after the 16 rank-1 updates, as in conv_fwd_kernel1.
// Preconditions (checked by conv2d_dgrad): the shape from make_conv_shape; dx does not alias
// dy or w.
#pragma once

#include "conv.h"
#include "conv_tile.cuh"

namespace ccn {

template <int BM, int BN>
__global__ void __launch_bounds__(kConvThreads)
    conv_dgrad_kernel1(const float* __restrict__ dy, const float* __restrict__ w, float* __restrict__ dx,
                       ConvShape g) {
  constexpr int LDA = BM + kConvPad, LDB = BN + kConvPad;
  constexpr int A_ROWS = BM / 16;                       // A elements loaded per thread
  constexpr int B_STEP = kConvThreads / BN, B_ROWS = kConvBK / B_STEP;  // B elements per thread
  CCN_DYNAMIC_SHARED(float, smem);
  float* As = smem;                  // [BK][BM + pad]
  float* Bs = smem + kConvBK * LDA;  // [BK][BN + pad]
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int tid = ty * 16 + tx;
  const int st = g.stride, phases = st * st;
  const int grp = blockIdx.z / phases, phase = blockIdx.z - grp * phases;
  const int pa = phase / st, pb = phase - pa * st;
  // The phase's input pixels: h = h_first + st*i (i < hph), w = w_first + st*j (j < wph).
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

  // A loads: column lk, rows lrow + 16*e. Row m -> image n and (p0, q0), the output pixel
  // its tap u = v = 0 reaches.
  const int lk = tid % kConvBK, lrow = tid / kConvBK;
  const float* dyimg[A_ROWS];  // image n of dy, offset to the group's first filter
  int p0[A_ROWS], q0[A_ROWS];
#pragma unroll
  for (int e = 0; e < A_ROWS; ++e) {
    int m = m0 + lrow + 16 * e;
    if (m < M) {
      int hw = hph * wph;
      int n = m / hw, rem = m - n * hw;
      int i = rem / wph, j = rem - i * wph;
      dyimg[e] = dy + (long long)n * g.pq * g.k + (long long)grp * g.kg;
      p0[e] = (h_first + st * i + g.pad_top - pa) / st;
      q0[e] = (w_first + st * j + g.pad_left - pb) / st;
    } else {
      dyimg[e] = dy;
      p0[e] = -1;  // p = p0 - u < 0 for every tap u >= 0: never loads
      q0[e] = 0;
    }
  }
  // B loads: column bn (an input channel), rows bk + B_STEP*e.
  const int bn = tid % BN, bk = tid / BN;
  const int c = n0 + bn;
  const bool c_valid = c < g.cg;
  const float* wgrp = w + (long long)grp * g.kg * g.rs * g.cg + c;

  float acc[BM / 16][BN / 16];
  tile_zero(acc);

  for (int k0 = 0; k0 < Kgemm; k0 += kConvBK) {
    // The tap of A's column lk: k = (u*su + v)*Kg + f.
    const int k = k0 + lk;
    // Past Kgemm: p = p0 - u < 0 for every p0 in [-1, kMaxExtent], without overflow.
    int u = static_cast<int>(kMaxExtent + 1), v = 0, f = 0;
    if (k < Kgemm) {
      int uv = k / g.kg;
      f = k - uv * g.kg;
      u = uv / su;
      v = uv - u * su;
    }
#pragma unroll
    for (int e = 0; e < A_ROWS; ++e) {
      int p = p0[e] - u, q = q0[e] - v;
      float val = 0.f;
      if (conv_in_range(p, g.p) && conv_in_range(q, g.q)) val = dyimg[e][((long long)p * g.q + q) * g.k + f];
      As[lk * LDA + lrow + 16 * e] = val;
    }
#pragma unroll
    for (int e = 0; e < B_ROWS; ++e) {
      int kk = bk + B_STEP * e, kb = k0 + kk;
      float val = 0.f;
      if (c_valid && kb < Kgemm) {
        int uv = kb / g.kg, fb = kb - uv * g.kg;
        int ub = uv / su, vb = uv - ub * su;
        int r = pa + st * ub, s = pb + st * vb;
        val = wgrp[(((long long)fb * g.r + r) * g.s + s) * g.cg];
      }
      Bs[kk * LDB + bn] = val;
    }
    __syncthreads();  // the tiles are complete before anyone reads them
    tile_fma_strided<kConvBK, BM + kConvPad, BN + kConvPad>(As, Bs, acc, tx, ty);
    __syncthreads();  // everyone is done reading before the next step overwrites the tiles
  }

  // Epilogue: store (coalesced across tx: dx is contiguous along the channels).
#pragma unroll
  for (int i = 0; i < BM / 16; ++i) {
    int m = m0 + ty + 16 * i;
    if (m >= M) continue;
    int hw = hph * wph;
    int n = m / hw, rem = m - n * hw;
    int ip = rem / wph, jp = rem - ip * wph;
    int h = h_first + st * ip, ww = w_first + st * jp;
    float* dxrow = dx + (((long long)n * g.h + h) * g.w + ww) * g.c + grp * g.cg;
#pragma unroll
    for (int j = 0; j < BN / 16; ++j) {
      int cc = n0 + tx + 16 * j;
      if (cc < g.cg) dxrow[cc] = acc[i][j];
    }
  }
}

}  // namespace ccn
