// Launchers of lrn.cuh (contract in ops.h). x, y, dy, dx are [rows, channels] (NHWC with
// rows = N*H*W), split into `groups` channel groups of channels / groups that are normalised
// independently (no window crosses a group boundary). The window of channel c is
// [c - before, c + after] within its group: before = size / 2 and after = (size - 1) / 2
// clipped to channels / groups - 1 (cuda_convnet.shapes.lrn_window states the rule; the
// launcher refuses values outside [0, channels / groups)). alpha is alpha' (the caller has
// applied the divide-by-size convention); neg_beta = -beta, coef = 2 * alpha' * beta, all
// rounded to float32 by the caller. neg_beta == -0.75f takes the rsqrtf form (lrn.cuh).
#pragma once

#include "common.h"

namespace ccn {

// `version`: 0 lets the launcher pick (lrn_*_kernel2 when a block's tile of whole rows of a
// group fits, i.e. channels / groups <= 2048 and the grid fits, else lrn_*_kernel1); 1 or 2
// forces that kernel (2 throws where channels / groups > 2048; any other value throws).
void lrn(const float* x, float* y, long long rows, int channels, int groups, int before, int after, float alpha,
         float neg_beta, float k, cudaStream_t stream, int version = 0);
// relu_mask: dx = x > 0 ? dx : 0, the backward of a ReLU whose output is x fused into the
// epilogue (bit-identical to relu_backward(x, dx)).
void lrn_backward(const float* x, const float* y, const float* dy, float* dx, long long rows, int channels,
                  int groups, int before, int after, float alpha, float neg_beta, float k, float coef,
                  cudaStream_t stream, int version = 0, bool relu_mask = false);
// Which lrn_*_kernel<n> lrn and lrn_backward run for this shape and `version` (both pick
// alike); throws std::invalid_argument exactly where they would refuse the shape or `version`.
int lrn_version(long long rows, int channels, int groups = 1, int version = 0);

}  // namespace ccn
