// Forward convolution as an implicit GEMM (ARCHITECTURE.md §4), NHWC x KRSC -> NPQK, with the
// bias and an optional ReLU fused into the epilogue. The math: cuda_convnet/reference/conv.py.
//
// Per group g (x: N,H,W,C; w: K,R,S,C/g; y: N,P,Q,K):
//   M = N*P*Q (output pixels), Ngemm = K/g (filters), Kgemm = R*S*C/g (taps x channels),
//   A[m, k] = x[n, p*stride + r - pad_top, q*stride + s - pad_left, g*C/g + c]  (0 outside)
//             with m = (n*P + p)*Q + q and k = (r*S + s)*C/g + c (the KRSC filter order),
//   B[k, j] = w[g*K/g + j, r, s, c]  (row j of the group's [K/g, R*S*C/g] filter matrix),
//   y[n, p, q, g*K/g + j] = sum_k A[m, k] B[k, j] + b[g*K/g + j], then ReLU if asked.
// No im2col is materialised: each K step gathers its A tile straight from x.
//
// conv_fwd_kernel1 (general: any shape): the 64 x 64 x 16 tile of conv_tile.cuh.
//   Grid: x = M tiles, y = Ngemm tiles, z = group.
//   Loads (every thread, every K step): one tap column kk = tid % 16 and four rows
//   tid / 16 + 16*e (e < 4) of both tiles. A row's (n, p, q) is decoded once before the K
//   loop into an image pointer and the top-left corner of its receptive field; the tap
//   (r, s, c) of column kk is decoded once per K step and shared by the four rows, so a
//   gather costs two adds, one bounds test and one load. Positions outside the image,
//   rows past M, taps past Kgemm and filters past K/g load 0, so any N, H, W, C (conv1's
//   C = 3 included), stride and asymmetric padding take this path unchanged.
//   Across a warp the 16 lanes of a row read 16 consecutive k: consecutive channels of
//   one pixel when C/g >= 16 (64-byte segments), and consecutive filter entries of w.
//   __syncthreads after the loads (the tiles are complete before anyone reads them) and
//   after the 16 rank-1 updates (everyone is done reading before the next step's loads).
//
// conv_fwd_kernel2 (fast path: C/g % 4 == 0, x and w 16-byte aligned; AlexNet conv2-5):
//   a 128 x 128 x 16 block tile, 256 threads as 16 x 16, each owning an 8 x 8 register
//   tile: rows 4*ty + i and 64 + 4*ty + i, columns 4*tx + j and 64 + 4*tx + j (i, j < 4),
//   read from shared memory as float4s: 4 shared-load instructions per 64 FMAs, against
//   8 per 16 in kernel1 (by instruction count kernel1 is bound by shared-memory
//   bandwidth; neither is measured on a GPU yet: bench/ will say).
//   Loads: 16-byte vectors. Thread tid loads the quad of taps k0 + 4*(tid % 4) .. + 3 (four
//   consecutive channels of one pixel, since C/g % 4 == 0 keeps a quad inside one (r, s))
//   for rows tid / 4 and 64 + tid / 4 of both tiles, and stores them transposed (k-major).
//   A warp's A loads are 8 pixels x 64 contiguous bytes. Same zero-fill rules as kernel1.
//   Grid: x = M tiles, y = Ngemm tiles, z = group. Barriers as in kernel1.
// Both kernels sum each output's R*S*C/g products in the same order (one fmaf chain over
// k = 0, 1, ...), so they give bit-identical results; the launcher picks kernel2 whenever
// its preconditions hold (the `version` argument of conv2d can force either, for tests and benchmarks).
// Preconditions (checked by conv2d): the shape from make_conv_shape; y does not
// alias x, w or b.
#pragma once

#include "conv.h"
#include "conv_tile.cuh"

namespace ccn {

// Where row m of the forward GEMM (output pixel (n, p, q)) reads its receptive field:
// image n's channels of group grp, and the field's top-left input pixel (h0, w0). A row
// past M gets an origin that is never in range, so its loads are zeros.
__device__ __forceinline__ void conv_fwd_row_origin(const ConvShape& g, const float* x, int grp, int m, int M,
                                                    const float*& xrow, int& h0, int& w0) {
  if (m < M) {
    int n = m / g.pq, pq = m - n * g.pq;
    int p = pq / g.q, q = pq - p * g.q;
    xrow = x + (long long)n * g.h * g.w * g.c + (long long)grp * g.cg;
    h0 = p * g.stride - g.pad_top;
    w0 = q * g.stride - g.pad_left;
  } else {
    xrow = x;
    h0 = kConvOffImage;
    w0 = 0;
  }
}

__global__ void __launch_bounds__(kConvThreads)
    conv_fwd_kernel1(const float* __restrict__ x, const float* __restrict__ w, const float* __restrict__ bias,
                     float* __restrict__ y, ConvShape g, bool relu) {
  CCN_DYNAMIC_SHARED(float, smem);
  float* As = smem;                       // [BK][BM + pad]
  float* Bs = smem + kConvBK * kConvLdA;  // [BK][BN + pad]
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int tid = ty * 16 + tx;
  const int grp = blockIdx.z;
  const int m0 = blockIdx.x * kConvBM, n0 = blockIdx.y * kConvBN;
  const int M = static_cast<int>(g.npq), Kgemm = g.rscg;

  // This thread's loads: column lk of the tiles, rows lrow + 16*e.
  const int lk = tid % kConvBK, lrow = tid / kConvBK;
  const float* xrow[4];  // image n of the row, offset to the group's first channel
  int h0[4], w0[4];      // top-left input pixel of the row's receptive field
  const float* wrow[4];  // filter of B-tile row lrow + 16*e (null past K/g)
#pragma unroll
  for (int e = 0; e < 4; ++e) {
    conv_fwd_row_origin(g, x, grp, m0 + lrow + 16 * e, M, xrow[e], h0[e], w0[e]);
    int j = n0 + lrow + 16 * e;
    wrow[e] = j < g.kg ? w + (long long)(grp * g.kg + j) * Kgemm : nullptr;
  }

  float acc[4][4];
  tile_zero(acc);

  for (int k0 = 0; k0 < Kgemm; k0 += kConvBK) {
    // The tap of column lk: k = (r*S + s)*Cg + c.
    const int k = k0 + lk;
    const bool k_valid = k < Kgemm;
    int r = 0, s = 0, c = 0;
    if (k_valid) {
      int rs = k / g.cg;
      c = k - rs * g.cg;
      r = rs / g.s;
      s = rs - r * g.s;
    }
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      int hh = h0[e] + r, ww = w0[e] + s;
      float a = 0.f;
      if (k_valid && conv_in_range(hh, g.h) && conv_in_range(ww, g.w))
        a = xrow[e][((long long)hh * g.w + ww) * g.c + c];
      As[lk * kConvLdA + lrow + 16 * e] = a;
      float b = 0.f;
      if (wrow[e] && k < Kgemm) b = wrow[e][k];
      Bs[lk * kConvLdB + lrow + 16 * e] = b;
    }
    __syncthreads();  // the tiles are complete before anyone reads them
    tile_fma_strided<kConvBK, kConvBM + kConvPad, kConvBN + kConvPad>(As, Bs, acc, tx, ty);
    __syncthreads();  // everyone is done reading before the next step overwrites the tiles
  }

  // Epilogue: bias, ReLU, store (coalesced across tx: y is contiguous along the filters).
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    int m = m0 + ty + 16 * i;
    if (m >= M) continue;
    float* yrow = y + (long long)m * g.k + grp * g.kg;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      int n = n0 + tx + 16 * j;
      if (n >= g.kg) continue;
      float v = acc[i][j];
      if (bias) v += bias[grp * g.kg + n];
      if (relu) v = (v <= 0.f) ? 0.f : v;
      yrow[n] = v;
    }
  }
}

constexpr int kConvFwd2BM = 128, kConvFwd2BN = 128;
constexpr int kConvFwd2LdA = kConvFwd2BM + kConvPad, kConvFwd2LdB = kConvFwd2BN + kConvPad;
constexpr int kConvFwd2SmemFloats = kConvBK * kConvFwd2LdA + kConvBK * kConvFwd2LdB;

__global__ void __launch_bounds__(kConvThreads)
    conv_fwd_kernel2(const float* __restrict__ x, const float* __restrict__ w, const float* __restrict__ bias,
                     float* __restrict__ y, ConvShape g, bool relu) {
  CCN_DYNAMIC_SHARED(float, smem);
  float* As = smem;                            // [BK][128 + pad]
  float* Bs = smem + kConvBK * kConvFwd2LdA;  // [BK][128 + pad]
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int tid = ty * 16 + tx;
  const int grp = blockIdx.z;
  const int m0 = blockIdx.x * kConvFwd2BM, n0 = blockIdx.y * kConvFwd2BN;
  const int M = static_cast<int>(g.npq), Kgemm = g.rscg;  // Kgemm % 4 == 0

  // This thread's loads: the tap quad lq (k = k0 + 4*lq .. + 3), rows lrow and 64 + lrow.
  const int lq = tid % 4, lrow = tid / 4;
  const float* xrow[2];
  int h0[2], w0[2];
  const float* wrow[2];
#pragma unroll
  for (int e = 0; e < 2; ++e) {
    conv_fwd_row_origin(g, x, grp, m0 + lrow + 64 * e, M, xrow[e], h0[e], w0[e]);
    int j = n0 + lrow + 64 * e;
    wrow[e] = j < g.kg ? w + (long long)(grp * g.kg + j) * Kgemm : nullptr;
  }

  float acc[8][8];
  tile_zero(acc);

  for (int k0 = 0; k0 < Kgemm; k0 += kConvBK) {
    // The quad's tap: k = (r*S + s)*Cg + c with c % 4 == 0; the quad shares (r, s).
    const int k = k0 + 4 * lq;
    const bool k_valid = k < Kgemm;
    int r = 0, s = 0, c = 0;
    if (k_valid) {
      int rs = k / g.cg;
      c = k - rs * g.cg;
      r = rs / g.s;
      s = rs - r * g.s;
    }
#pragma unroll
    for (int e = 0; e < 2; ++e) {
      int hh = h0[e] + r, ww = w0[e] + s;
      float4 a = {0.f, 0.f, 0.f, 0.f};
      if (k_valid && conv_in_range(hh, g.h) && conv_in_range(ww, g.w))
        a = *reinterpret_cast<const float4*>(xrow[e] + ((long long)hh * g.w + ww) * g.c + c);
      float* as = As + 4 * lq * kConvFwd2LdA + lrow + 64 * e;
      as[0] = a.x;
      as[kConvFwd2LdA] = a.y;
      as[2 * kConvFwd2LdA] = a.z;
      as[3 * kConvFwd2LdA] = a.w;
      float4 b = {0.f, 0.f, 0.f, 0.f};
      if (wrow[e] && k < Kgemm) b = *reinterpret_cast<const float4*>(wrow[e] + k);
      float* bs = Bs + 4 * lq * kConvFwd2LdB + lrow + 64 * e;
      bs[0] = b.x;
      bs[kConvFwd2LdB] = b.y;
      bs[2 * kConvFwd2LdB] = b.z;
      bs[3 * kConvFwd2LdB] = b.w;
    }
    __syncthreads();  // the tiles are complete before anyone reads them
    tile_fma_8x8<kConvBK, kConvFwd2LdA, kConvFwd2LdB>(As, Bs, acc, tx, ty);
    __syncthreads();  // everyone is done reading before the next step overwrites the tiles
  }

  // Epilogue: bias, ReLU, store. Register row i is tile row 4*ty + i (i < 4) or
  // 64 + 4*ty + (i - 4); column j likewise with tx.
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    int m = m0 + (i < 4 ? 4 * ty + i : 64 + 4 * ty + i - 4);
    if (m >= M) continue;
    float* yrow = y + (long long)m * g.k + grp * g.kg;
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      int n = n0 + (j < 4 ? 4 * tx + j : 64 + 4 * tx + j - 4);
      if (n >= g.kg) continue;
      float v = acc[i][j];
      if (bias) v += bias[grp * g.kg + n];
      if (relu) v = (v <= 0.f) ? 0.f : v;
      yrow[n] = v;
    }
  }
}

}  // namespace ccn
