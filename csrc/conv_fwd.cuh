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
//   Loads: a 2-stage cp.async pipeline (ptx/cp_async.cuh). Thread tid copies the quad of
//   taps k0 + 4*(tid % 4) .. + 3 (four consecutive channels of one pixel, since C/g % 4 == 0
//   keeps a quad inside one (r, s)) for rows tid / 4 and 64 + tid / 4 of both tiles, one
//   4-byte copy per element, transposed into the k-major tiles (a 16-byte copy cannot
//   transpose; the 16 copies per thread and K step are ~1.5 % of the step's instructions).
//   A warp's A copies cover 8 pixels x 64 contiguous bytes. Same zero-fill rules as kernel1
//   (src-size 0). Each K step: wait for this thread's copies of tile kt, one barrier (every
//   thread's copies visible, and everyone done with the stage read in step kt - 1), issue
//   the copies of tile kt + 1 into that stage, then the 1024 FMAs of tile kt, which hide
//   the copies' latency. Grid: x = M tiles, y = Ngemm tiles, z = group.
// Both kernels sum each output's R*S*C/g products in the same order (one fmaf chain over
// k = 0, 1, ...), so they give bit-identical results; the launcher picks kernel2 whenever
// its preconditions hold (the `version` argument of conv2d can force either, for tests and benchmarks).
// Preconditions (checked by conv2d): the shape from make_conv_shape; y does not
// alias x, w or b.
#pragma once

#include "conv.h"
#include "conv_tile.cuh"
#include "ptx/cp_async.cuh"

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

constexpr int kConvFwd2BM = 128, kConvFwd2BN = 128, kConvFwd2Stages = 2;
constexpr int kConvFwd2LdA = kConvFwd2BM + kConvPad, kConvFwd2LdB = kConvFwd2BN + kConvPad;
constexpr int kConvFwd2StageFloats = kConvBK * kConvFwd2LdA + kConvBK * kConvFwd2LdB;  // one stage: A, then B
constexpr int kConvFwd2SmemFloats = kConvFwd2Stages * kConvFwd2StageFloats;

// The 8 x 8 epilogue of kernel2 and kernel3: bias, ReLU, store. Register row i is tile row
// 4*ty + i (i < 4) or 64 + 4*ty + (i - 4); column j likewise with tx.
__device__ __forceinline__ void conv_fwd_store_8x8(const ConvShape& g, const float* __restrict__ bias,
                                                   float* __restrict__ y, const float (&acc)[8][8], int grp, int m0,
                                                   int n0, int M, bool relu, int tx, int ty) {
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

__global__ void __launch_bounds__(kConvThreads)
    conv_fwd_kernel2(const float* __restrict__ x, const float* __restrict__ w, const float* __restrict__ bias,
                     float* __restrict__ y, ConvShape g, bool relu) {
  constexpr int S = kConvFwd2Stages, LDA = kConvFwd2LdA, LDB = kConvFwd2LdB;
  CCN_DYNAMIC_SHARED(float, smem);  // [S] x {As [BK][128 + pad], Bs [BK][128 + pad]}
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int tid = ty * 16 + tx;
  const int grp = blockIdx.z;
  const int m0 = blockIdx.x * kConvFwd2BM, n0 = blockIdx.y * kConvFwd2BN;
  const int M = static_cast<int>(g.npq), Kgemm = g.rscg;  // Kgemm % 4 == 0
  const int ktiles = (Kgemm + kConvBK - 1) / kConvBK;

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

  // Tile kt into stage `stage`: per row, the quad's four elements by four 4-byte copies,
  // transposed to k-major; positions off the image, taps past Kgemm and filters past K/g
  // read nothing and land as zeros.
  auto load = [&](int stage, int kt) {
    const int k = kt * kConvBK + 4 * lq;
    const bool k_valid = k < Kgemm;
    int r = 0, s = 0, c = 0;  // the quad's tap: k = (r*S + s)*Cg + c, c % 4 == 0, one (r, s)
    if (k_valid) {
      int rs = k / g.cg;
      c = k - rs * g.cg;
      r = rs / g.s;
      s = rs - r * g.s;
    }
    float* as = smem + stage * kConvFwd2StageFloats + 4 * lq * LDA + lrow;
    float* bs = smem + stage * kConvFwd2StageFloats + kConvBK * LDA + 4 * lq * LDB + lrow;
#pragma unroll
    for (int e = 0; e < 2; ++e) {
      int hh = h0[e] + r, ww = w0[e] + s;
      const bool a_in = k_valid && conv_in_range(hh, g.h) && conv_in_range(ww, g.w);
      const float* a_src = a_in ? xrow[e] + ((long long)hh * g.w + ww) * g.c + c : x;
      const bool b_in = wrow[e] && k_valid;
      const float* b_src = b_in ? wrow[e] + k : w;
#pragma unroll
      for (int q = 0; q < 4; ++q) {
        cp_async_4(as + q * LDA + 64 * e, a_src + q, a_in ? 4 : 0);
        cp_async_4(bs + q * LDB + 64 * e, b_src + q, b_in ? 4 : 0);
      }
    }
  };

  for (int st = 0; st < S - 1; ++st) {
    if (st < ktiles) load(st, st);
    cp_async_commit_group();  // empty past the last tile: the group count per step stays fixed
  }

  float acc[8][8];
  tile_zero(acc);

  int read_stage = 0, write_stage = S - 1;  // counters, not kt % S: no division in the loop
  for (int kt = 0; kt < ktiles; ++kt) {
    cp_async_wait_group<S - 2>();  // this thread's copies of tile kt have landed
    __syncthreads();  // every thread's copies of tile kt are visible, and the stage read in step kt - 1 is free
    if (kt + S - 1 < ktiles) load(write_stage, kt + S - 1);
    cp_async_commit_group();
    const float* as = smem + read_stage * kConvFwd2StageFloats;
    tile_fma_8x8<kConvBK, LDA, LDB>(as, as + kConvBK * LDA, acc, tx, ty);
    read_stage = read_stage == S - 1 ? 0 : read_stage + 1;
    write_stage = write_stage == S - 1 ? 0 : write_stage + 1;
  }

  conv_fwd_store_8x8(g, bias, y, acc, grp, m0, n0, M, relu, tx, ty);
}

// conv_fwd_kernel3 (any C/g; AlexNet conv1, C = 3): kernel2's tile, micro-kernel and
// pipeline, with a scalar gather: the four taps a thread copies per K step need not share
// one (r, s) and are not 16-byte aligned, so each element is a 4-byte copy of its own tap.
// The tap decode k -> (r, s, offset (r*W + s)*C + c from the receptive field's corner) is
// done with divisions into a table in shared memory (three int arrays, read as int4 per
// thread quad: 3 LDS.128 per K step), so an element costs the two bounds adds and
// compares, one address multiply-add and the copy. Measured in the sm_90 SASS of the main
// loop against the alternatives: carrying each tap's (r, s, c, offset) in registers with
// per-step carries spends ~15 integer instructions per tap per step (73 % FMA share, 85 %
// with the table); one tap x 8 rows per thread would share the decode but needs 4
// registers per row, and the tile is at the 128-register limit of 2 blocks/SM.
// The table holds two windows of kConvFwd3WindowTiles K steps (tile t's taps at
// (16 t) mod 2 * 16 * kConvFwd3WindowTiles): window v + 1 is decoded into the half that
// window v - 1 used, before the K steps of window v start, so any Kgemm fits and no
// barrier is added: the last copies that read window v - 1 (tile 40 v - 1, issued in step
// 40 v - 2) precede the barrier of step 40 v - 1, and the first that read window v + 1
// (tile 40 (v + 1), step 40 (v + 1) - 1) follow that window's barriers. Taps past Kgemm
// hold a filter column that puts every row's origin left of the image (their copies
// zero-fill, as the filters' do by their own k < Kgemm test).
constexpr int kConvFwd3WindowTiles = 40;
constexpr int kConvFwd3WindowTaps = kConvFwd3WindowTiles * kConvBK;  // 640
constexpr int kConvFwd3TableTaps = 2 * kConvFwd3WindowTaps;           // 15 KiB with the stages' 33: under 48 KiB

__global__ void __launch_bounds__(kConvThreads)
    conv_fwd_kernel3(const float* __restrict__ x, const float* __restrict__ w, const float* __restrict__ bias,
                     float* __restrict__ y, ConvShape g, bool relu) {
  constexpr int S = kConvFwd2Stages, LDA = kConvFwd2LdA, LDB = kConvFwd2LdB;
  static_assert(kConvFwd3WindowTiles >= S, "a window outlasts the copies in flight");
  CCN_DYNAMIC_SHARED(float, smem);  // [S] x {As [BK][128 + pad], Bs [BK][128 + pad]}
  __shared__ __align__(16) int tap_off[kConvFwd3TableTaps];  // (r*W + s)*C + c of the tap
  __shared__ __align__(16) int tap_r[kConvFwd3TableTaps];
  __shared__ __align__(16) int tap_s[kConvFwd3TableTaps];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int tid = ty * 16 + tx;
  const int grp = blockIdx.z;
  const int m0 = blockIdx.x * kConvFwd2BM, n0 = blockIdx.y * kConvFwd2BN;
  const int M = static_cast<int>(g.npq), Kgemm = g.rscg;
  const int ktiles = (Kgemm + kConvBK - 1) / kConvBK;

  // Window v of the table into its half. A valid row's origin column is at most
  // (Q-1)*stride - pad_left, so s_off = pad_left - (Q-1)*stride - 1 puts it at -1 or less
  // (and no lower than -(padded width): no overflow).
  const int s_off = g.pad_left - (g.q - 1) * g.stride - 1;
  auto fill = [&](int v) {
    const int half = (v & 1) * kConvFwd3WindowTaps;
    for (int i = tid; i < kConvFwd3WindowTaps; i += kConvThreads) {
      const int k = v * kConvFwd3WindowTaps + i;
      int r = 0, s = s_off, off = 0;
      if (k < Kgemm) {
        int rs = k / g.cg, c = k - rs * g.cg;
        r = rs / g.s;
        s = rs - r * g.s;
        off = (r * g.w + s) * g.c + c;
      }
      tap_off[half + i] = off;
      tap_r[half + i] = r;
      tap_s[half + i] = s;
    }
  };

  // This thread's loads: taps k0 + 4*lq + q (q < 4), rows lrow and 64 + lrow.
  const int lq = tid % 4, lrow = tid / 4;
  const float* xc[2];  // x at the receptive field's corner (channel 0 of the group)
  int h0[2], w0[2];
  const float* wrow[2];  // the filter of B-tile row lrow + 64*e (the group's last one past K/g, unused)
  bool w_ok[2];
#pragma unroll
  for (int e = 0; e < 2; ++e) {
    const float* xrow;
    conv_fwd_row_origin(g, x, grp, m0 + lrow + 64 * e, M, xrow, h0[e], w0[e]);
    // The corner itself may lie in the padding (before x for image 0): formed as an
    // integer. The copies' addresses are formed whether or not they are used (a copy of
    // 0 bytes reads nothing), which saves a select per element.
    xc[e] = reinterpret_cast<const float*>(reinterpret_cast<unsigned long long>(xrow) +
                                           4 * (((long long)h0[e] * g.w + w0[e]) * g.c));
    int j = n0 + lrow + 64 * e;
    w_ok[e] = j < g.kg;
    wrow[e] = w + (long long)(grp * g.kg + min(j, g.kg - 1)) * Kgemm;
  }
  fill(0);
  __syncthreads();  // window 0 of the table is complete before the first copies read it

  // Tile kt into stage `stage` (its taps at table index t), transposed to k-major by 4-byte
  // copies; off-image positions, taps past Kgemm and filters past K/g land as zeros.
  auto load = [&](int stage, int kt, int t) {
    float* as = smem + stage * kConvFwd2StageFloats + 4 * lq * LDA + lrow;
    float* bs = smem + stage * kConvFwd2StageFloats + kConvBK * LDA + 4 * lq * LDB + lrow;
    const int k = kt * kConvBK + 4 * lq;
    const int4 off = *reinterpret_cast<const int4*>(tap_off + t + 4 * lq);
    const int4 tr = *reinterpret_cast<const int4*>(tap_r + t + 4 * lq);
    const int4 ts = *reinterpret_cast<const int4*>(tap_s + t + 4 * lq);
    const int offs[4] = {off.x, off.y, off.z, off.w}, rr[4] = {tr.x, tr.y, tr.z, tr.w},
              ss[4] = {ts.x, ts.y, ts.z, ts.w};
#pragma unroll
    for (int q = 0; q < 4; ++q) {
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        const bool a_in = conv_in_range(h0[e] + rr[q], g.h) && conv_in_range(w0[e] + ss[q], g.w);
        cp_async_4(as + q * LDA + 64 * e, xc[e] + offs[q], a_in ? 4 : 0);
        const bool b_in = w_ok[e] && k + q < Kgemm;
        cp_async_4(bs + q * LDB + 64 * e, wrow[e] + k + q, b_in ? 4 : 0);
      }
    }
  };

  static_assert(S == 2, "the table index below assumes one tile in flight");
  load(0, 0, 0);
  cp_async_commit_group();

  float acc[8][8];
  tile_zero(acc);

  int read_stage = 0, write_stage = S - 1;
  int t = kConvBK;  // table index of tile kt + 1: 16 (kt + 1) mod kConvFwd3TableTaps
  for (int kt = 0, v = 0; kt < ktiles; ++v) {
    if ((v + 1) * kConvFwd3WindowTiles < ktiles) fill(v + 1);  // into the half window v - 1 used
    const int kend = min(ktiles, (v + 1) * kConvFwd3WindowTiles);
    for (; kt < kend; ++kt) {
      cp_async_wait_group<S - 2>();  // this thread's copies of tile kt have landed
      __syncthreads();  // every thread's copies of tile kt are visible, and the stage read in step kt - 1 is free
      if (kt + 1 < ktiles) load(write_stage, kt + 1, t);
      cp_async_commit_group();
      const float* as = smem + read_stage * kConvFwd2StageFloats;
      tile_fma_8x8<kConvBK, LDA, LDB>(as, as + kConvBK * LDA, acc, tx, ty);
      read_stage = read_stage == S - 1 ? 0 : read_stage + 1;
      write_stage = write_stage == S - 1 ? 0 : write_stage + 1;
      t = t + kConvBK == kConvFwd3TableTaps ? 0 : t + kConvBK;
    }
  }
  conv_fwd_store_8x8(g, bias, y, acc, grp, m0, n0, M, relu, tx, ty);
}

}  // namespace ccn
