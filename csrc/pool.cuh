// Max pooling over size x size windows at `stride` (paper §3.4: z = 3, s = 2, "overlapping
// pooling"), NHWC, with (top, left) padding that acts as -inf (never wins). Output size by
// the floor rule of cuda_convnet/shapes.py (checked again by the launcher).
//
// max_pool_forward_kernel1<W>: grid-stride, one thread per output (n, p, q, channel
//   group of W): W = 4 channels (float4 loads and store) when C % 4 == 0 and x, y are
//   16-byte aligned, else W = 1. Channels are innermost, so a warp reads 32 consecutive
//   16-byte chunks of each input pixel: coalesced. Loops over the taps inside the image
//   only (padding never wins, and a huge window then costs what its image part costs).
//   The max propagates NaN (as NumPy's maximum does); the result is exact.
//
// max_pool_backward_kernel1<W>: a GATHER, no atomics: one thread per input (n, h, w,
//   channel group), which adds up the dy of every window whose argmax it is, and writes
//   its dx once. The argmax rule is the reference's: the FIRST element of the window equal
//   to the max in row-major tap order (a padding tap counts as -inf). An input x is the
//   argmax of window (p, q) iff x == y[p, q] and no earlier tap of that window equals
//   y[p, q]; the (cheap) y compare filters, the scan of earlier taps runs only on a match.
//   Windows are visited p descending, then q descending: the order in which the reference
//   adds them (its loop runs over taps r, s ascending, and tap r of window p is input row
//   p*stride + r), so the sums are bit-identical to the reference's float32 ones, and
//   deterministic whatever the thread order. Reads: x and y once per covering window
//   (~2.25 windows per input for 3/2), dy only on a hit; a write of dx per input.
//   relu_mask: dx = x > 0 ? dx : 0, the backward of a ReLU whose output is this pool's
//   input x, fused into the store (x is already in registers): ReluGrad's select, so the
//   result is bit-identical to relu_backward(x, max_pool_backward(...)) and the ReLU's own
//   backward launch disappears.
#pragma once

#include "common.h"
#include "vector_access.cuh"

namespace ccn {

struct PoolGeometry {
  int n, h, w, c;      // input NHWC
  int size, stride;
  int top, left;       // padding before rows / columns (bottom/right only shape p, q)
  int p, q;            // output rows / columns
};

// The taps [lo, hi) of a window whose first row (or column) is input index `origin` that
// lie inside an input of `extent` rows: origin may be negative (top padding) and
// origin + size may pass the extent (bottom padding). 64-bit: origin + size can pass 2^31.
struct PoolSpan {
  long long origin;
  int lo, hi;
};
__device__ __forceinline__ PoolSpan pool_span(long long origin, int size, int extent) {
  const long long lo = origin < 0 ? -origin : 0;
  const long long hi = extent - origin < size ? extent - origin : size;
  return PoolSpan{origin, static_cast<int>(lo), static_cast<int>(hi)};
}

template <int W>
__global__ void max_pool_forward_kernel1(const float* __restrict__ x, float* __restrict__ y, const PoolGeometry g) {
  const int groups = g.c / W;
  const long long total = (long long)g.n * g.p * g.q * groups;
  const long long stride = (long long)gridDim.x * blockDim.x;
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride) {
    long long t = i;
    const int cg = static_cast<int>(t % groups); t /= groups;
    const int q = static_cast<int>(t % g.q); t /= g.q;
    const int p = static_cast<int>(t % g.p);
    const long long n = t / g.p;
    float m[W];
#pragma unroll
    for (int e = 0; e < W; ++e) m[e] = -INFINITY;
    // Only the taps inside the image: padding holds -inf and never changes the max, and
    // with a huge window the padding taps would be almost all of size^2.
    const PoolSpan rs = pool_span((long long)p * g.stride - g.top, g.size, g.h);
    const PoolSpan ss = pool_span((long long)q * g.stride - g.left, g.size, g.w);
    for (int r = rs.lo; r < rs.hi; ++r) {
      const int hi = static_cast<int>(rs.origin + r);
      for (int s = ss.lo; s < ss.hi; ++s) {
        const int wi = static_cast<int>(ss.origin + s);
        float v[W];
        load_vec<W>(x + ((n * g.h + hi) * g.w + wi) * g.c + cg * W, v);
#pragma unroll
        for (int e = 0; e < W; ++e) m[e] = (v[e] > m[e] || v[e] != v[e]) ? v[e] : m[e];
      }
    }
    store_vec<W>(y + i * W, m);
  }
}

// Is tap (r, s) the first tap of window (p, q), in row-major order, whose value equals ym?
// (The caller knows tap (r, s) is inside the image and equals ym.) Padding taps hold -inf,
// so they matter only when ym is -inf, and then where they lie is known without a scan:
// the window's tap (0, 0) is padding when its origin is above or left of the image, and
// every row before r ends in right padding when the window runs past the right edge
// (bottom padding rows come after every image row). Only image taps are scanned.
__device__ __forceinline__ bool pool_first_max(const float* __restrict__ x_nc, const PoolGeometry& g, int p, int q,
                                               int r, int s, float ym) {
  const PoolSpan rs = pool_span((long long)p * g.stride - g.top, g.size, g.h);
  const PoolSpan ss = pool_span((long long)q * g.stride - g.left, g.size, g.w);
  if (ym == -INFINITY) {
    if (rs.lo > 0 || ss.lo > 0) return false;  // tap (0, 0) is padding
    if (r > 0 && ss.hi < g.size) return false;  // row 0 ends in padding, before (r, s)
  }
  for (int r2 = rs.lo; r2 <= r; ++r2) {
    const long long hi = rs.origin + r2;
    const int s_end = (r2 == r) ? s : ss.hi;
    for (int s2 = ss.lo; s2 < s_end; ++s2)
      if (x_nc[(hi * g.w + ss.origin + s2) * g.c] == ym) return false;
  }
  return true;
}

template <int W>
__global__ void max_pool_backward_kernel1(const float* __restrict__ x, const float* __restrict__ y,
                                          const float* __restrict__ dy, float* __restrict__ dx, const PoolGeometry g,
                                          const bool relu_mask) {
  const int groups = g.c / W;
  const long long total = (long long)g.n * g.h * g.w * groups;
  const long long stride = (long long)gridDim.x * blockDim.x;
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride) {
    long long t = i;
    const int cg = static_cast<int>(t % groups); t /= groups;
    const int wi = static_cast<int>(t % g.w); t /= g.w;
    const int hi = static_cast<int>(t % g.h);
    const long long n = t / g.h;
    // Padded coordinates and window bounds in 64 bits: hp - size + stride passes 2^31 for
    // a stride near 2^31 (and would wrap to window -1).
    const long long hp = (long long)hi + g.top, wp = (long long)wi + g.left;
    // Windows p with p*stride <= hp < p*stride + size, inside [0, P): only those are visited.
    const int p_lo = hp >= g.size ? static_cast<int>((hp - g.size) / g.stride + 1) : 0;
    const int p_hi = static_cast<int>(min(hp / g.stride, (long long)g.p - 1));
    const int q_lo = wp >= g.size ? static_cast<int>((wp - g.size) / g.stride + 1) : 0;
    const int q_hi = static_cast<int>(min(wp / g.stride, (long long)g.q - 1));
    float xv[W], acc[W];
    load_vec<W>(x + i * W, xv);
#pragma unroll
    for (int e = 0; e < W; ++e) acc[e] = 0.f;
    const float* x_n = x + n * g.h * g.w * g.c + cg * W;  // this image, this channel group
    for (int p = p_hi; p >= p_lo; --p) {
      for (int q = q_hi; q >= q_lo; --q) {
        const long long o = ((n * g.p + p) * g.q + q) * g.c + cg * W;
        float yv[W];
        load_vec<W>(y + o, yv);
        bool any = false;
#pragma unroll
        for (int e = 0; e < W; ++e) any |= (xv[e] == yv[e]);
        if (!any) continue;  // the common case: this input is not the max of (p, q)
        float dv[W];
        load_vec<W>(dy + o, dv);
        const int r = static_cast<int>(hp - (long long)p * g.stride);
        const int s = static_cast<int>(wp - (long long)q * g.stride);
#pragma unroll
        for (int e = 0; e < W; ++e)
          if (xv[e] == yv[e] && pool_first_max(x_n + e, g, p, q, r, s, yv[e])) acc[e] += dv[e];
      }
    }
    if (relu_mask) {
#pragma unroll
      for (int e = 0; e < W; ++e) acc[e] = (xv[e] > 0.f) ? acc[e] : 0.f;
    }
    store_vec<W>(dx + i * W, acc);
  }
}

}  // namespace ccn
