// Channel concatenation and split along the last (channel) axis, where the paper's two
// towers meet (§3.2: conv3 and the FC layers read both towers' maps) and part again.
// With rows = N*H*W (or N for (N, features) arrays) every array is a [rows, C] matrix:
//
//   concat: whole[r, off_i + c] = part_i[r, c]
//   split:  part_i[r, c] = whole[r, off_i + c] (+ beta_i * part_i[r, c] when beta_i != 0)
//
// The split's beta accumulates into a part in place (cuda-convnet's habit for gradients):
// where a tensor feeds two layers its gradient is the sum of theirs, and the split of a
// Concat's gradient can add its piece to the gradient already there instead of writing a
// new array that a separate add would then read. beta_i == 0 never reads part_i (it may
// hold NaN); beta_i == 1 adds exactly (1 * p is p; a fused multiply-add rounds once).
//
// The parts arrive as a table passed by value (ChannelParts, a few hundred bytes), so a
// whole concat or split is ONE launch on the device, with no host round trip.
//
// channel_copy_kernel1<VEC, SPLIT>: grid-stride over the units of the whole array, in its
// memory order: unit u = (row, channel group) with groups of W = 4 channels (VEC: every
// part's channel count and offset a multiple of 4 and every pointer 16-byte aligned, so a
// unit is one float4 on both sides) or W = 1. Consecutive threads touch consecutive
// addresses of the whole array and, inside a part, of that part: both sides coalesced.
// The part holding a unit is found by a linear scan of the (few) offsets. A launcher with
// more than kMaxChannelParts parts covers them in several launches, each over the channel
// span of its parts.
#pragma once

#include "common.h"

namespace ccn {

constexpr int kMaxChannelParts = 32;

struct ChannelParts {
  float* ptr[kMaxChannelParts];
  int channels[kMaxChannelParts];  // C_i
  int offset[kMaxChannelParts];    // channel offset of part i inside the whole array
  float beta[kMaxChannelParts];    // split: part_i = whole slice + beta_i * part_i (0: not read)
  int count;
};

template <bool VEC, bool SPLIT>
__global__ void channel_copy_kernel1(float* __restrict__ whole, long long rows, int whole_channels, int span_begin,
                                     int span_channels, const __grid_constant__ ChannelParts parts) {
  constexpr int W = VEC ? 4 : 1;
  const long long units_per_row = span_channels / W;
  const long long units = rows * units_per_row;
  const long long stride = (long long)gridDim.x * blockDim.x;
  for (long long u = (long long)blockIdx.x * blockDim.x + threadIdx.x; u < units; u += stride) {
    const long long row = u / units_per_row;
    const int c = span_begin + static_cast<int>(u - row * units_per_row) * W;
    int i = 0;
    while (c >= parts.offset[i] + parts.channels[i]) ++i;  // parts are in channel order
    const int ci = parts.channels[i];
    float* w = whole + row * whole_channels + c;
    float* p = parts.ptr[i] + row * ci + (c - parts.offset[i]);
    const float beta = SPLIT ? parts.beta[i] : 0.f;
    if (VEC) {
      if (SPLIT) {
        float4 v = *reinterpret_cast<const float4*>(w);
        if (beta != 0.f) {
          const float4 old = *reinterpret_cast<const float4*>(p);
          v.x += beta * old.x;
          v.y += beta * old.y;
          v.z += beta * old.z;
          v.w += beta * old.w;
        }
        *reinterpret_cast<float4*>(p) = v;
      } else {
        *reinterpret_cast<float4*>(w) = *reinterpret_cast<const float4*>(p);
      }
    } else {
      if (SPLIT) *p = beta != 0.f ? *w + beta * *p : *w;
      else       *w = *p;
    }
  }
}

}  // namespace ccn
