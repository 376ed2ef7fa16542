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

// `kernel`: 0 picks (2 when channels / groups <= 2048, else 1); 1 or 2 forces a version (tests).
void lrn_forward(const float* x, float* y, long long rows, int channels, int groups, int before, int after,
                 float alpha, float neg_beta, float k, cudaStream_t stream, int kernel = 0);
void lrn_backward(const float* x, const float* y, const float* dy, float* dx, long long rows, int channels,
                  int groups, int before, int after, float alpha, float neg_beta, float k, float coef,
                  cudaStream_t stream, int kernel = 0);

}  // namespace ccn
