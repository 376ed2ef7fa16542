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
// conv_wgrad_kernel1 (general: any shape): the 64 x 64 x 16 tile of
//   conv_tile.cuh over one chunk. Grid: x = Ngemm tiles, y = M tiles, z = chunk*groups + g.
//   Loads: both tiles use column tid % 64 and K-step rows tid / 64 + 4*e (e < 4). Across
//   a warp the A loads read 32 consecutive filters of one dy pixel and the B loads 32
//   consecutive (r, s, c) entries of one receptive field (consecutive channels of a pixel
//   when C/g >= 32): coalesced. The B column's tap (r, s, c) is decoded once per block; a
//   row t's (n, p, q) once per K step, shared by the A and B load of that row. Rows past
//   the chunk, filters past K/g, columns past R*S*C/g and pixels in the padding load 0.
//   __syncthreads after the loads and after the 16 rank-1 updates.
//   Output: out + chunk * chunk_stride, laid out as dw (chunks == 1 writes dw directly).
// conv_wgrad_kernel2 (fast path: C/g % 4 == 0, K/g % 4 == 0, x and dy 16-byte aligned;
//   AlexNet conv2-5): a 128 x 128 x 16 block tile over one chunk, 256 threads as 16 x 16,
//   each owning the 8 x 8 register tile of tile_fma_8x8 (rows 4*ty + i and 64 + 4*ty + i,
//   columns 4*tx + j and 64 + 4*tx + j), read from shared memory as float4s: 4 shared
//   loads per 64 FMAs. Grid as kernel1.
//   Loads: cp.async 16-byte copies straight into the k-major tiles As[t][f], Bs[t][j] (no
//   transpose: along a row t, four consecutive filters are contiguous in dy, and four
//   consecutive taps (r, s, c..c+3) contiguous in x because C/g % 4 == 0 keeps a quad
//   inside one (r, s)). Thread tid copies the column quad 4*(tid % 32) of both tiles for
//   rows tid / 32 and 8 + tid / 32 of each K step: a warp copies 512 contiguous bytes of
//   one dy row and 32 quads of one receptive field. The quad's tap (r, s, c) is decoded
//   once per block; the rows' (n, p, q) are decoded once and then advanced by 16 rows per
//   K step with precomputed carries (16 = (16 / Q) rows of Q + 16 % Q): no integer division
//   in the K loop. Rows past the chunk, filters past K/g, taps past R*S*C/g and pixels in
//   the padding copy 0 bytes (the hardware zero-fills the 16 bytes).
//   Pipeline: kWgrad2Stages stages of shared memory; each K step waits for its stage
//   (cp.async.wait_group kWgrad2Stages - 2), one barrier (every thread's copies of the
//   stage are visible, and every thread is done reading the stage the next copy
//   overwrites, which step kt - 1 read), the copies of the step kWgrad2Stages - 1 ahead,
//   commit (an empty group past the chunk's end keeps one group per step), the FMAs.
//   Each output sums its chunk's rows in ascending t with one fmaf chain, exactly as
//   kernel1 does: under the same plan both kernels give bit-identical partials.
//   Shared tiles are unpadded (row stride 128): a warp's float4 reads all fall in one
//   row kk (A: two addresses, broadcast; B: 16 consecutive float4s), and a copy writes 16
//   contiguous bytes, so no padding is needed against bank conflicts. 3 stages x 16 KiB
//   = 48 KiB, the most dynamic shared memory a launch gets without an opt-in.
// conv_wgrad_kernel3 (K/g % 4 == 0, dy 16-byte aligned, any C: AlexNet conv1 with C = 3):
//   kernel2 with the x tile copied element by element (cp.async 4 bytes), since a quad of
//   taps is then neither inside one pixel nor 16-byte aligned. Thread tid copies row
//   tid / 16 of the K step, columns 8*(tid % 16) .. + 7 (8 consecutive taps: the warp's
//   lanes read runs of the receptive field, contiguous along (s, c) within a filter row);
//   the taps are counted on from the first (channel, then s, then r, with selects, not
//   branches) and the element's offset from the receptive-field origin moves with them by
//   1, a pixel step or a row step, so an element costs no multiplication; the row's
//   (n, p, q) is advanced as in kernel2. dy, the pipeline, the FMAs and the epilogue are
//   kernel2's (one shared body, conv_wgrad_tile128), so kernel3's dw has kernel1's bits.
// conv_wgrad_kernel4, conv_wgrad_kernel5: kernel2 and kernel3 with a 96 x 128 tile (6 x 8
//   outputs per thread: rows 4*ty + i and 64 + 2*ty + i, one float4 and one float2 shared
//   read of A per kk), for K/groups = 96 or 192 (AlexNet conv1, conv4), which fill 75 % of
//   128-filter tiles and all of 96-filter ones. The dy tile keeps kernel2's 128-float rows
//   and copies (the lanes of columns 96-127 zero-fill them; never read), so the K loop
//   differs from kernel2's only in the FMAs. Same pipeline, same order of the sums: the same
//   bits as kernel1 under the same plan.
// conv_bias_grad_kernel1, conv_sum_partials_kernel1: the chunk reductions, shared with the
//   tensor-core wgrad (conv_wgrad_reduce.cuh).
// Preconditions (checked by conv2d_wgrad): the shape from make_conv_shape; chunk_rows >= 1
// (the plan makes it a multiple of 16); the workspace holds chunks x K x R*S*C/g partials
// of dw and bias_chunks x K of db wherever that reduction is split; dw, db and the
// workspace do not alias x, dy or each other.
#pragma once

#include "conv.h"
#include "conv_tile.cuh"
#include "conv_wgrad_reduce.cuh"
#include "ptx.cuh"

namespace ccn {

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
  if (j_valid) conv_decode_tap(j, g.cg, g.s, r, s, c);
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

constexpr int kWgrad2BM = 128, kWgrad2BN = 128, kWgrad2Stages = 3;
constexpr int kWgrad4BM = 96;  // kernel4/5: the 96-filter tile (K/groups = 96, 192: AlexNet conv1, conv4)
constexpr int kWgrad2StageFloats = kConvBK * (kWgrad2BM + kWgrad2BN);
constexpr int kWgrad2SmemFloats = kWgrad2Stages * kWgrad2StageFloats;
// kernel4/5 keep kernel2's 128-float rows of the dy tile (columns 96-127 unused): every lane
// then issues its dy copies as in kernel2, those past column 96 zero-filling the unused
// columns, with no branch and no extra addressing in the K loop.
constexpr int kWgrad4SmemFloats = kWgrad2SmemFloats;
static_assert(kWgrad2SmemFloats * sizeof(float) <= 48 * 1024, "kernel2 needs no shared-memory opt-in");

// The (n, p, q) of a GEMM row t = (n*P + p)*Q + q, advanced by a fixed number of rows per
// K step without a division: the step's carries are precomputed.
struct WgradRowCounter {
  int n, p, q;
  __device__ __forceinline__ void start(const ConvShape& g, int t) {
    n = t / g.pq;
    int pq = t - n * g.pq;
    p = pq / g.q;
    q = pq - p * g.q;
  }
  // step_q = rows % Q, step_p = rows / Q (rows = the K step).
  __device__ __forceinline__ void advance(const ConvShape& g, int step_p, int step_q) {
    q += step_q;
    p += step_p;
    if (q >= g.q) {
      q -= g.q;
      ++p;
    }
    while (p >= g.p) {  // once at most when P >= 17 (AlexNet); a few times for tiny images
      p -= g.p;
      ++n;
    }
  }
};

// The body of conv_wgrad_kernel2 (VEC_X: x copied as 16-byte quads) and conv_wgrad_kernel3
// (x copied element by element), BM = 128 filters per tile; kernel4 and kernel5 are the same
// with BM = 96. Everything but the copies of the x tile and the tile's height is shared.
template <bool VEC_X, int BM = kWgrad2BM>
__device__ __forceinline__ void conv_wgrad_tile128(const float* __restrict__ x, const float* __restrict__ dy,
                                                   float* __restrict__ out, const ConvShape& g, int chunk_rows,
                                                   long long chunk_stride) {
  static_assert(BM == 128 || BM == 96, "8 or 6 filters per thread");
  constexpr int S = kWgrad2Stages, LDA = kWgrad2BM, LD = kWgrad2BN, TM = BM == 128 ? 8 : 6;
  constexpr int STAGE = kWgrad2StageFloats;
  CCN_DYNAMIC_SHARED(float, smem);  // [S][As 16 x 128 (BM used), Bs 16 x 128]
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int tid = ty * 16 + tx;
  const int grp = blockIdx.z % g.groups, chunk = blockIdx.z / g.groups;
  const int m0 = blockIdx.y * BM, n0 = blockIdx.x * kWgrad2BN;
  const int t_begin = chunk * chunk_rows;
  const int t_end = static_cast<int>(min(static_cast<long long>(t_begin) + chunk_rows, g.npq));
  const int ksteps = (t_end - t_begin + kConvBK - 1) / kConvBK;
  const int step_p = kConvBK / g.q, step_q = kConvBK - step_p * g.q;  // a K step's row carries

  // dy copies: column quad 4*lq, rows lr and lr + 8 of a K step. BM = 96: the lanes lq >= 24
  // zero-fill the tile's unused columns 96-127. K/g % 4 == 0: a quad is all in or all out.
  const int lq = tid % 32, lr = tid / 32;
  const bool f_ok = 4 * lq < BM && m0 + 4 * lq < g.kg;
  const float* dyp = dy + (long long)(t_begin + lr) * g.k + grp * g.kg + m0 + 4 * lq;
  const long long dy_step = (long long)kConvBK * g.k, dy_half = 8LL * g.k;
  int rows_left = t_end - t_begin - lr;  // rows from this thread's first dy row to the chunk's end

  // x copies. VEC_X: the tap quad of column 4*lq (one (r, s), C/g % 4 == 0), rows lr and
  // lr + 8. Otherwise: row lb = tid / 16 and the 8 consecutive columns 8*tx .. 8*tx + 7,
  // whose taps are re-derived each K step from the first one's by counting (channel, then
  // s, then r), so only one tap and one row counter stay live.
  const int lb = VEC_X ? lr : tid / 16;
  const int j = VEC_X ? n0 + 4 * lq : n0 + 8 * tx;
  const int cols_left = g.rscg - j;  // !VEC_X: columns j + e past R*S*C/g copy nothing
  int r = 0, s = 0, c = 0;
  if (j < g.rscg) conv_decode_tap(j, g.cg, g.s, r, s, c);
  const float* xg = x + (long long)grp * g.cg;
  // !VEC_X: the first column's tap offset from the receptive-field origin, and the steps
  // from the group's last channel of (r, s) to its first of (r, s + 1) and of (r + 1, 0).
  const long long tap0 = ((long long)r * g.w + s) * g.c + c;
  const int pixel_jump = g.c - g.cg + 1;
  const long long row_jump = (long long)(g.w - g.s + 1) * g.c - g.cg + 1;
  constexpr int XROWS = VEC_X ? 2 : 1;
  WgradRowCounter row[XROWS];
#pragma unroll
  for (int e = 0; e < XROWS; ++e) row[e].start(g, min(t_begin + lb + 8 * e, t_end - 1));  // past the end: never copied
  int x_rows_left = t_end - t_begin - lb;

  // Issue the copies of the next K step into `stage`, then move every counter on a step.
  auto copy_step = [&](int stage) {
    float* as = smem + stage * STAGE;
    float* bs = as + kConvBK * LDA;
#pragma unroll
    for (int e = 0; e < 2; ++e) {
      const bool a_ok = rows_left > 8 * e && f_ok;
      cp_async_16(as + (lr + 8 * e) * LDA + 4 * lq, a_ok ? dyp + e * dy_half : dy, a_ok ? 16 : 0);
    }
    if (VEC_X) {
#pragma unroll
      for (int e = 0; e < XROWS; ++e) {
        const int hh = row[e].p * g.stride + r - g.pad_top, ww = row[e].q * g.stride + s - g.pad_left;
        const bool b_ok =
            x_rows_left > 8 * e && cols_left > 0 && conv_in_range(hh, g.h) && conv_in_range(ww, g.w);
        const float* src = b_ok ? xg + (((long long)row[e].n * g.h + hh) * g.w + ww) * g.c + c : x;
        cp_async_16(bs + (lb + 8 * e) * LD + 4 * lq, src, b_ok ? 16 : 0);
      }
    } else {
      const int h0 = row[0].p * g.stride - g.pad_top, w0 = row[0].q * g.stride - g.pad_left;
      // x offset of column e's element: the row's receptive-field origin plus the tap's
      // offset, which grows by 1 per channel, by pixel_jump to the next s and by row_jump
      // to the next r (NHWC).
      const float* src0 = xg + (long long)row[0].n * g.h * g.w * g.c + ((long long)h0 * g.w + w0) * g.c + tap0;
      const bool t_ok = x_rows_left > 0;
      int rr = r, ss = s, cc = c;
      long long off = 0;
#pragma unroll
      for (int e = 0; e < 8; ++e) {
        const int hh = h0 + rr, ww = w0 + ss;
        const bool b_ok = t_ok && e < cols_left && conv_in_range(hh, g.h) && conv_in_range(ww, g.w);
        cp_async_4(bs + lb * LD + 8 * tx + e, b_ok ? src0 + off : x, b_ok ? 4 : 0);
        // The next column: the next channel, else the next tap (selects, not branches).
        const bool next_s = ++cc == g.cg;
        cc = next_s ? 0 : cc;
        ss += next_s;
        const bool next_r = ss == g.s;
        ss = next_r ? 0 : ss;
        rr += next_r;
        off += next_r ? row_jump : next_s ? pixel_jump : 1;
      }
    }
    dyp += dy_step;
    rows_left -= kConvBK;
    x_rows_left -= kConvBK;
#pragma unroll
    for (int e = 0; e < XROWS; ++e) row[e].advance(g, step_p, step_q);
  };

  for (int st = 0; st < S - 1; ++st) {
    if (st < ksteps) copy_step(st);
    cp_async_commit_group();
  }

  float acc[TM][8];
  tile_zero(acc);

  // Stage counters instead of kt % S: no division in the K loop.
  int read_stage = 0, write_stage = S - 1;
  for (int kt = 0; kt < ksteps; ++kt) {
    cp_async_wait_group<S - 2>();  // this thread's copies of step kt have landed
    __syncthreads();  // everyone's have, and everyone is done with step kt - 1's stage
    if (kt + S - 1 < ksteps) copy_step(write_stage);  // overwrites step kt - 1's stage
    cp_async_commit_group();
    const float* as = smem + read_stage * STAGE;
    tile_fma_rows<kConvBK, LDA, LD, kWgrad2BN / 2, TM>(as, as + kConvBK * LDA, acc, tx, ty);
    read_stage = read_stage == S - 1 ? 0 : read_stage + 1;
    write_stage = write_stage == S - 1 ? 0 : write_stage + 1;
  }

  // Epilogue: this chunk's partial sums, laid out as dw. Register row i is filter
  // m0 + 4*ty + i (i < 4) or m0 + 64 + (TM - 4)*ty + (i - 4); column jj m0 + 4*tx + jj
  // (jj < 4) or 64 + 4*tx + (jj - 4).
  float* dst = out + chunk * chunk_stride;
#pragma unroll
  for (int i = 0; i < TM; ++i) {
    const int fi = m0 + (i < 4 ? 4 * ty + i : 64 + (TM - 4) * ty + i - 4);
    if (fi >= g.kg) continue;
    float* drow = dst + (long long)(grp * g.kg + fi) * g.rscg;
#pragma unroll
    for (int jj = 0; jj < 8; ++jj) {
      const int col = n0 + (jj < 4 ? 4 * tx + jj : 64 + 4 * tx + jj - 4);
      if (col < g.rscg) drow[col] = acc[i][jj];
    }
  }
}

__global__ void __launch_bounds__(kConvThreads, 2)
    conv_wgrad_kernel2(const float* __restrict__ x, const float* __restrict__ dy, float* __restrict__ out,
                       ConvShape g, int chunk_rows, long long chunk_stride) {
  conv_wgrad_tile128<true>(x, dy, out, g, chunk_rows, chunk_stride);
}

__global__ void __launch_bounds__(kConvThreads, 2)
    conv_wgrad_kernel3(const float* __restrict__ x, const float* __restrict__ dy, float* __restrict__ out,
                       ConvShape g, int chunk_rows, long long chunk_stride) {
  conv_wgrad_tile128<false>(x, dy, out, g, chunk_rows, chunk_stride);
}

__global__ void __launch_bounds__(kConvThreads, 2)
    conv_wgrad_kernel4(const float* __restrict__ x, const float* __restrict__ dy, float* __restrict__ out,
                       ConvShape g, int chunk_rows, long long chunk_stride) {
  conv_wgrad_tile128<true, kWgrad4BM>(x, dy, out, g, chunk_rows, chunk_stride);
}

__global__ void __launch_bounds__(kConvThreads, 2)
    conv_wgrad_kernel5(const float* __restrict__ x, const float* __restrict__ dy, float* __restrict__ out,
                       ConvShape g, int chunk_rows, long long chunk_stride) {
  conv_wgrad_tile128<false, kWgrad4BM>(x, dy, out, g, chunk_rows, chunk_stride);
}

}  // namespace ccn
