// Launchers of lrn.cuh (contract in ops.h). x, y, dy, dx are [rows, channels] (NHWC with
// rows = N*H*W). alpha is alpha' (the caller has applied the divide-by-size convention);
// neg_beta = -beta, coef = 2 * alpha' * beta, all rounded to float32 by the caller. Any
// size >= 1 is legal: a window reaching past both ends of the row is the whole row.
#pragma once

#include "common.h"

namespace ccn {

// `kernel`: 0 picks (2 when channels <= 2048, else 1); 1 or 2 forces a version (tests).
void lrn_forward(const float* x, float* y, long long rows, int channels, long long size, float alpha, float neg_beta,
                 float k, cudaStream_t stream, int kernel = 0);
void lrn_backward(const float* x, const float* y, const float* dy, float* dx, long long rows, int channels,
                  long long size, float alpha, float neg_beta, float k, float coef, cudaStream_t stream, int kernel = 0);

}  // namespace ccn
