// Launchers of lrn.cuh (contract in ops.h). x, y, dy, dx are [rows, channels] (NHWC with
// rows = N*H*W). alpha is alpha' (the caller has applied the divide-by-size convention);
// neg_beta = -beta, coef = 2 * alpha' * beta, all rounded to float32 by the caller. Any
// size >= 1 is legal: a window reaching past both ends of the row is the whole row.
#pragma once

#include "common.h"

namespace ccn {

// `version`: 0 lets the launcher pick (lrn_*_kernel2 when a block's tile of whole rows fits,
// i.e. channels <= 2048 and the grid fits, else lrn_*_kernel1); 1 or 2 forces that kernel
// (2 throws where channels > 2048; any other value throws).
void lrn(const float* x, float* y, long long rows, int channels, long long size, float alpha, float neg_beta,
         float k, cudaStream_t stream, int version = 0);
void lrn_backward(const float* x, const float* y, const float* dy, float* dx, long long rows, int channels,
                  long long size, float alpha, float neg_beta, float k, float coef, cudaStream_t stream,
                  int version = 0);
// Which lrn_*_kernel<n> lrn and lrn_backward run for this shape and `version` (both pick
// alike); throws std::invalid_argument exactly where they would refuse `version`.
int lrn_version(long long rows, int channels, int version = 0);

}  // namespace ccn
