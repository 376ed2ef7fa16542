// Launchers of pool.cuh (contract in ops.h). x is NHWC [n, h, w, c]; y, dy are
// [n, p, q, c]; padding (top, bottom, left, right), each pad < size; p and q must be the
// floor-rule output size of cuda_convnet/shapes.py, which the launcher recomputes.
#pragma once

#include "common.h"

namespace ccn {

// y = max over each size x size window at `stride` (padding never wins; NaN propagates).
void max_pool(const float* x, float* y, int n, int h, int w, int c, int size, int stride, int pad_top,
                      int pad_bottom, int pad_left, int pad_right, int p, int q, cudaStream_t stream);

// dx: each dy goes to the first maximum of its window in row-major order (the reference's
// tie rule); overlapping windows add up. A gather: deterministic, no atomics.
// relu_mask: dx = x > 0 ? dx : 0, the backward of a ReLU whose output is x fused into the
// store (bit-identical to relu_backward(x, dx)).
void max_pool_backward(const float* x, const float* y, const float* dy, float* dx, int n, int h, int w, int c,
                       int size, int stride, int pad_top, int pad_bottom, int pad_left, int pad_right, int p, int q,
                       cudaStream_t stream, bool relu_mask = false);

}  // namespace ccn
