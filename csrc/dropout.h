// Launcher of dropout.cuh (contract in ops.h).
#pragma once

#include "common.h"

namespace ccn {

// y[i] = keep(i) ? x[i] * scale : 0 when `mask`, else y[i] = x[i] * scale, for i < n, with
// keep(i) the Philox4x32-10 keep-mask of cuda_convnet/random.py for (seed, offset) and
// `threshold` = ceil(p * 2^24) in [0, 2^24]. Forward (train and test) and backward are all
// this one call with different scalars (see dropout.cuh).
void dropout(const float* x, float* y, long long n, unsigned long long seed, unsigned long long offset,
             unsigned threshold, float scale, bool mask, cudaStream_t stream);

}  // namespace ccn
