// Local response normalisation across channels (paper §3.3), NHWC: with rows = N*H*W,
// x is a [rows, C] matrix and the window runs along the contiguous channel axis. With
// channel groups (the one-device form of the two towers, paper §3.5) each row is `groups`
// independent rows of C/groups channels, so the kernels see [rows * groups, C / groups]:
// the launcher folds the groups into the rows and no window crosses a group boundary.
//
//   scale[c] = k + alpha' * sum_{j = c - before}^{c + after} x[j]^2   (j clipped to [0, C))
//   y[c]     = x[c] * scale[c]^(-beta)
//   dx[c]    = dy[c] * scale[c]^(-beta) - coef * x[c] * sum_{j = c - after}^{c + before} t[j]
//   t[j]     = dy[j] * y[j] / scale[j],   coef = 2 * alpha' * beta
//
// before = size/2 and after = (size-1)/2, each clipped to C - 1: the caller passes them
// (cuda_convnet.shapes.lrn_window states the rule once). alpha' (alpha or alpha/size: the
// caller picks the convention), -beta, k and coef arrive rounded to float32, as the
// reference rounds them. Window sums run in ascending channel order, as the reference's.
// scale^(-beta) is lrn_pow: for the paper's beta = 0.75 r * sqrtf(r) with r = rsqrtf(scale)
// (one MUFU.RSQ and one IEEE square root instead of powf's log/exp sequence, which made the
// kernels instruction-bound); relative error <= ~5 ulp on a GPU (rsqrtf 2 ulp, halved by
// the root, + 3 roundings); powf for any other beta. The backward's t = dy * y / scale is
// lrn_over_scale: for beta = 0.75 a multiply by r * r (~5 ulp) instead of the IEEE division.
//
// lrn_forward_kernel1 / lrn_backward_kernel1: the general fallback (any C, any size).
//   Grid-stride, one thread per element; the window is read straight from global memory
//   (neighbouring threads read overlapping windows: L1 hits). Backward recomputes
//   scale[j] for each j of the window: O(size^2) reads per element.
// lrn_forward_kernel2<W> / lrn_backward_kernel2<W>: whole rows in shared memory, for
//   C <= kLrnTileFloats. A block of 256 threads owns R = kLrnTileFloats / C consecutive
//   rows: R*C contiguous floats of x, loaded with float4 (W = 4: C % 4 == 0 and every
//   pointer 16-byte aligned) or scalars (W = 1); __syncthreads; then each thread computes
//   groups of W consecutive outputs and writes them with one W-wide store. The W windows
//   overlap: each shared value of their union is read once and added to every window
//   holding it (W + size - 1 shared reads per W outputs, 8 for the paper's size 5, not 20).
//   Every global element is read once and written once.
//   Backward keeps three tiles (x, t, dy*scale^-beta): phase 1 loads x; phase 2 computes
//   scale, t and dy*scale^-beta per element; phase 3 sums t over the mirrored window.
//   Shared memory: 8 KB forward, 24 KB backward.
//
// relu_mask (backward, both kernels): dx[c] = x[c] > 0 ? dx[c] : 0, the backward of a ReLU
// whose output is this LRN's input x, applied in the epilogue: x is already in registers
// or shared memory, so the ReLU's own backward launch (a read of y and dy, a write of dx)
// disappears. The select is relu_backward's (ReluGrad), so the result is bit-identical to
// relu_backward(x, lrn_backward(...)).
#pragma once

#include "common.h"
#include "vector_access.cuh"

namespace ccn {

constexpr int kLrnTileFloats = 2048;
constexpr int kLrnThreads = 256;

struct LrnParams {
  int channels;
  int before, after;  // window of channel c: [c - before, c + after]; before = size/2, after = (size-1)/2
  float alpha;        // alpha' (already divided by size if that convention is chosen)
  float neg_beta;     // -beta
  float k;
  float coef;         // 2 * alpha' * beta (backward)
  bool three_quarters;  // beta == 0.75: lrn_pow takes the rsqrtf form
  bool relu_mask;       // backward: dx = x > 0 ? dx : 0 (the producer ReLU's backward, fused)
};

// The fused ReLU backward of the epilogue: ReluGrad's select, with x the ReLU's output.
__device__ __forceinline__ float lrn_relu_mask(float x, float dx, const LrnParams& a) {
  return (!a.relu_mask || x > 0.f) ? dx : 0.f;
}

// scale^(-beta). scale >= k > 0, so rsqrtf and sqrtf see positive finite inputs (or +inf).
__device__ __forceinline__ float lrn_pow(float scale, const LrnParams& a) {
  if (a.three_quarters) {
    const float r = rsqrtf(scale);  // scale^(-1/2)
    return r * sqrtf(r);            // scale^(-1/2) * scale^(-1/4)
  }
  return powf(scale, a.neg_beta);
}

// v / scale: v * r * r for beta = 0.75 (r = rsqrtf(scale), which the compiler shares with
// lrn_pow of the same scale), the IEEE division otherwise.
__device__ __forceinline__ float lrn_over_scale(float v, float scale, const LrnParams& a) {
  if (a.three_quarters) {
    const float r = rsqrtf(scale);
    return v * (r * r);
  }
  return v / scale;
}

// scale of channel c of one row (global or shared memory), ascending window order.
// The window [c - before, c + after] clipped to [0, channels): c + after may pass 2^31 for
// a huge channel count, so the upper bound is computed in 64 bits.
__device__ __forceinline__ int lrn_lo(int c, int before) { return c > before ? c - before : 0; }
__device__ __forceinline__ int lrn_hi(int c, int after, int channels) {
  const long long hi = (long long)c + after;
  return hi < channels - 1 ? static_cast<int>(hi) : channels - 1;
}

__device__ __forceinline__ float lrn_scale(const float* row, int c, const LrnParams& a) {
  const int lo = lrn_lo(c, a.before), hi = lrn_hi(c, a.after, a.channels);
  float s = 0.f;
  for (int j = lo; j <= hi; ++j) s += row[j] * row[j];
  return s * a.alpha + a.k;
}

// The scales of W consecutive channels c0 .. c0+W-1 of one row: each x[j] of the union of
// their windows is read once (W + size - 1 reads instead of W * size) and added to every
// window that holds it, still in ascending j for each sum.
template <int W>
__device__ __forceinline__ void lrn_scales(const float* row, int c0, const LrnParams& a, float (&s)[W]) {
#pragma unroll
  for (int u = 0; u < W; ++u) s[u] = 0.f;
  const int lo = lrn_lo(c0, a.before), hi = lrn_hi(c0 + W - 1, a.after, a.channels);
  for (int j = lo; j <= hi; ++j) {
    const float sq = row[j] * row[j];
#pragma unroll
    for (int u = 0; u < W; ++u)
      if (j >= c0 + u - a.before && j <= c0 + u + a.after) s[u] += sq;
  }
#pragma unroll
  for (int u = 0; u < W; ++u) s[u] = s[u] * a.alpha + a.k;
}

// The backward window sums of t for W consecutive channels, the same way.
template <int W>
__device__ __forceinline__ void lrn_back_sums(const float* t_row, int c0, const LrnParams& a, float (&s)[W]) {
#pragma unroll
  for (int u = 0; u < W; ++u) s[u] = 0.f;
  const int lo = lrn_lo(c0, a.after), hi = lrn_hi(c0 + W - 1, a.before, a.channels);
  for (int j = lo; j <= hi; ++j) {
    const float t = t_row[j];
#pragma unroll
    for (int u = 0; u < W; ++u)
      if (j >= c0 + u - a.after && j <= c0 + u + a.before) s[u] += t;
  }
}

__global__ void lrn_forward_kernel1(const float* __restrict__ x, float* __restrict__ y, long long rows,
                                    const LrnParams a) {
  const long long n = rows * a.channels;
  const long long stride = (long long)gridDim.x * blockDim.x;
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
    const long long row = i / a.channels;
    const int c = static_cast<int>(i - row * a.channels);
    const float* xr = x + row * a.channels;
    y[i] = xr[c] * lrn_pow(lrn_scale(xr, c, a), a);
  }
}

__global__ void lrn_backward_kernel1(const float* __restrict__ x, const float* __restrict__ y,
                                     const float* __restrict__ dy, float* __restrict__ dx, long long rows,
                                     const LrnParams a) {
  const long long n = rows * a.channels;
  const long long stride = (long long)gridDim.x * blockDim.x;
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
    const long long row = i / a.channels;
    const int c = static_cast<int>(i - row * a.channels);
    const long long base = row * a.channels;
    const float* xr = x + base;
    const int lo = lrn_lo(c, a.after), hi = lrn_hi(c, a.before, a.channels);
    float back = 0.f;
    for (int j = lo; j <= hi; ++j) back += lrn_over_scale(dy[base + j] * y[base + j], lrn_scale(xr, j, a), a);
    const float own = dy[i] * lrn_pow(lrn_scale(xr, c, a), a);
    dx[i] = lrn_relu_mask(xr[c], own - a.coef * xr[c] * back, a);
  }
}

// Copy `count` floats (count % W == 0) from global src into shared dst with W-wide loads.
template <int W>
__device__ __forceinline__ void lrn_load_tile(const float* __restrict__ src, float* dst, int count) {
  for (int e = threadIdx.x * W; e < count; e += blockDim.x * W) {
    float v[W];
    load_vec<W>(src + e, v);
#pragma unroll
    for (int u = 0; u < W; ++u) dst[e + u] = v[u];
  }
}

template <int W>
__global__ void __launch_bounds__(kLrnThreads)
    lrn_forward_kernel2(const float* __restrict__ x, float* __restrict__ y, long long rows, int rows_per_block,
                        const LrnParams a) {
  CCN_DYNAMIC_SHARED(float, xs);
  const long long row0 = (long long)blockIdx.x * rows_per_block;
  const int nrows = static_cast<int>(min((long long)rows_per_block, rows - row0));
  const int count = nrows * a.channels;
  const long long base = row0 * a.channels;
  lrn_load_tile<W>(x + base, xs, count);
  __syncthreads();  // the whole tile is loaded before any window reads a neighbour's channels
  for (int e = threadIdx.x * W; e < count; e += blockDim.x * W) {
    const int r = e / a.channels, c0 = e - r * a.channels;  // W | C: a group never crosses rows
    const float* xr = xs + r * a.channels;
    float sc[W], out[W];
    lrn_scales<W>(xr, c0, a, sc);
#pragma unroll
    for (int u = 0; u < W; ++u) out[u] = xr[c0 + u] * lrn_pow(sc[u], a);
    store_vec<W>(y + base + e, out);
  }
}

template <int W>
__global__ void __launch_bounds__(kLrnThreads)
    lrn_backward_kernel2(const float* __restrict__ x, const float* __restrict__ y, const float* __restrict__ dy,
                         float* __restrict__ dx, long long rows, int rows_per_block, const LrnParams a) {
  CCN_DYNAMIC_SHARED(float, smem);
  const int tile = rows_per_block * a.channels;
  float* xs = smem;             // x
  float* ts = smem + tile;      // t = dy * y / scale
  float* ps = smem + 2 * tile;  // dy * scale^-beta
  const long long row0 = (long long)blockIdx.x * rows_per_block;
  const int nrows = static_cast<int>(min((long long)rows_per_block, rows - row0));
  const int count = nrows * a.channels;
  const long long base = row0 * a.channels;
  lrn_load_tile<W>(x + base, xs, count);
  __syncthreads();  // x complete: scale[c] reads neighbours
  for (int e = threadIdx.x * W; e < count; e += blockDim.x * W) {
    const int r = e / a.channels, c0 = e - r * a.channels;
    const float* xr = xs + r * a.channels;
    float yv[W], dv[W], sc[W];
    load_vec<W>(y + base + e, yv);
    load_vec<W>(dy + base + e, dv);
    lrn_scales<W>(xr, c0, a, sc);
#pragma unroll
    for (int u = 0; u < W; ++u) {
      ts[e + u] = lrn_over_scale(dv[u] * yv[u], sc[u], a);
      ps[e + u] = dv[u] * lrn_pow(sc[u], a);
    }
  }
  __syncthreads();  // t complete: the backward window reads neighbours' t
  for (int e = threadIdx.x * W; e < count; e += blockDim.x * W) {
    const int r = e / a.channels, c0 = e - r * a.channels;
    float back[W], out[W];
    lrn_back_sums<W>(ts + r * a.channels, c0, a, back);
#pragma unroll
    for (int u = 0; u < W; ++u) out[u] = lrn_relu_mask(xs[e + u], ps[e + u] - a.coef * xs[e + u] * back[u], a);
    store_vec<W>(dx + base + e, out);
  }
}

}  // namespace ccn
