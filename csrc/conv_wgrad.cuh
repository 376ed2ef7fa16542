// Gradient of the convolution with respect to its filters ("wgrad", cuda-convnet's
// convWeightActs) as a split-K implicit GEMM, and the bias gradient (ARCHITECTURE.md §4). The
// math: conv2d_backward's dw and db in cuda_convnet/reference/conv.py.
//
// Per group g (x: N,H,W,C; dy: N,P,Q,K; dw: K,R,S,C/g):
//   M = K/g (filters), Ngemm = R*S*C/g (taps x channels, the KRSC order), Kgemm = N*P*Q,
//   A[f, t] = dy[n, p, q, g*K/g + f]     with t = (n*P + p)*Q + q,
//   B[t, j] = x[n, p*stride + r - pad_top, q*stride + s - pad_left, g*C/g + c]  (0 outside)
//             with j = (r*S + s)*C/g + c,
//   dw[g*K/g + f, r, s, c] = sum_t A[f, t] B[t, j].
// Kgemm = N*P*Q is long (AlexNet conv1 at batch 128: 387,200) and M x Ngemm small (conv1:
// 96 x 363), so the reduction is split into chunks of `chunk_rows` rows of N*P*Q: each
// block sums one chunk of one tile into its own slice of a workspace, and
// conv_sum_partials_kernel1 adds the slices in chunk order. No atomics anywhere: every
// output is one thread's fixed-order sum, so dw and db are bit-identical on every run, in
// every emulator thread order, and for every launch configuration of a given plan
// (conv2d_wgrad_plan, which depends on the shape only).
//
// conv_wgrad_kernel1 (general; the only version so far): the 64 x 64 x 16 tile of
//   conv_tile.cuh over one chunk. Grid: x = Ngemm tiles, y = M tiles, z = chunk*groups + g.
//   Loads: both tiles use column tid % 64 and K-step rows tid / 64 + 4*e (e < 4). Across
//   a warp the A loads read 32 consecutive filters of one dy pixel and the B loads 32
//   consecutive (r, s, c) entries of one receptive field (consecutive channels of a pixel
//   when C/g >= 32): coalesced. The B column's tap (r, s, c) is decoded once per block; a
//   row t's (n, p, q) once per K step, shared by the A and B load of that row. Rows past
//   the chunk, filters past K/g, columns past R*S*C/g and pixels in the padding load 0.
//   __syncthreads after the loads and after the 16 rank-1 updates.
//   Output: out + chunk * chunk_stride, laid out as dw (chunks == 1 writes dw directly).
// conv_bias_grad_kernel1: db partials. One thread per column (channel) and chunk of rows,
//   summing its rows in order; adjacent threads read adjacent channels (coalesced).
//   Grid: x = column blocks of 128, y = chunk. Output: out[chunk * cols + col].
// conv_sum_partials_kernel1: out[i] = sum over chunks, in chunk order, of parts[chunk *
//   count + i]; grid-stride loop, one element per thread per iteration (coalesced).
// Preconditions (checked by conv2d_wgrad): the shape from make_conv_shape; chunk_rows >= 1
// (the plan makes it a multiple of 16); the workspace holds chunks x K x R*S*C/g partials
// of dw and bias_chunks x K of db wherever that reduction is split; dw, db and the
// workspace do not alias x, dy or each other.
#pragma once

#include "conv.h"
#include "conv_tile.cuh"

namespace ccn {

constexpr int kConvBiasThreads = 128;

__global__ void __launch_bounds__(kConvThreads)
    conv_wgrad_kernel1(const float* __restrict__ x, const float* __restrict__ dy, float* __restrict__ out,
                       ConvShape g, int chunk_rows, long long chunk_stride) {
  CCN_DYNAMIC_SHARED(float, smem);
  float* As = smem;                       // [BK][BM + pad]: dy, rows t, columns f
  float* Bs = smem + kConvBK * kConvLdA;  // [BK][BN + pad]: x patches, rows t, columns j
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int tid = ty * 16 + tx;
  const int grp = blockIdx.z % g.groups, chunk = blockIdx.z / g.groups;
  const int m0 = blockIdx.y * kConvBM, n0 = blockIdx.x * kConvBN;
  const int t_begin = chunk * chunk_rows;
  const int t_end = static_cast<int>(min(static_cast<long long>(t_begin) + chunk_rows, g.npq));

  // This thread's loads: column lc of both tiles, K-step rows lk + 4*e.
  const int lc = tid % kConvBM, lk = tid / kConvBM;
  const int f = m0 + lc;  // A column: a filter of the group
  const bool f_valid = f < g.kg;
  const float* dyf = dy + (long long)grp * g.kg + f;
  const int j = n0 + lc;  // B column: a tap (r, s, c)
  const bool j_valid = j < g.rscg;  // past R*S*C/g: never loads
  int r = 0, s = 0, c = 0;
  if (j_valid) {
    int rs = j / g.cg;
    c = j - rs * g.cg;
    r = rs / g.s;
    s = rs - r * g.s;
  }
  const float* xc = x + (long long)grp * g.cg + c;
  const int dr = r - g.pad_top, ds = s - g.pad_left;

  float acc[4][4];
  tile_zero(acc);

  for (int k0 = t_begin; k0 < t_end; k0 += kConvBK) {
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int kk = lk + 4 * e;
      const int t = k0 + kk;
      float a = 0.f, b = 0.f;
      if (t < t_end) {
        int n = t / g.pq, pq = t - n * g.pq;
        int p = pq / g.q, q = pq - p * g.q;
        if (f_valid) a = dyf[(long long)t * g.k];
        int hh = p * g.stride + dr, ww = q * g.stride + ds;
        if (j_valid && conv_in_range(hh, g.h) && conv_in_range(ww, g.w))
          b = xc[(((long long)n * g.h + hh) * g.w + ww) * g.c];
      }
      As[kk * kConvLdA + lc] = a;
      Bs[kk * kConvLdB + lc] = b;
    }
    __syncthreads();  // the tiles are complete before anyone reads them
    tile_fma_strided<kConvBK, kConvBM + kConvPad, kConvBN + kConvPad>(As, Bs, acc, tx, ty);
    __syncthreads();  // everyone is done reading before the next step overwrites the tiles
  }

  // Epilogue: this chunk's partial sums, laid out as dw (coalesced across tx).
  float* dst = out + chunk * chunk_stride;
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    int fi = m0 + ty + 16 * i;
    if (fi >= g.kg) continue;
    float* row = dst + (long long)(grp * g.kg + fi) * g.rscg;
#pragma unroll
    for (int jj = 0; jj < 4; ++jj) {
      int col = n0 + tx + 16 * jj;
      if (col < g.rscg) row[col] = acc[i][jj];
    }
  }
}

__global__ void __launch_bounds__(kConvBiasThreads)
    conv_bias_grad_kernel1(const float* __restrict__ dy, float* __restrict__ out, long long rows, int cols,
                           int chunk_rows) {
  const int col = blockIdx.x * kConvBiasThreads + threadIdx.x;
  if (col >= cols) return;
  const long long r0 = (long long)blockIdx.y * chunk_rows;
  const long long r1 = min(r0 + chunk_rows, rows);
  float sum = 0.f;
  for (long long r = r0; r < r1; ++r) sum += dy[r * cols + col];
  out[(long long)blockIdx.y * cols + col] = sum;
}

__global__ void conv_sum_partials_kernel1(const float* __restrict__ parts, float* __restrict__ out, int chunks,
                                          long long count) {
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < count;
       i += (long long)gridDim.x * blockDim.x) {
    float sum = parts[i];
    for (int ch = 1; ch < chunks; ++ch) sum += parts[ch * count + i];
    out[i] = sum;
  }
}

}  // namespace ccn
