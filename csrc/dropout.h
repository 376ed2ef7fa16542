// Launcher of dropout.cuh (contract in ops.h).
#pragma once

#include "common.h"

namespace ccn {

// The grid's y dimension holds the channel groups.
constexpr int kDropoutMaxGroups = 65535;

// x, y: [rows, channels] row-major, channels split into `groups` equal ranges (§3.2's towers
// in one tensor). y = keep ? x * scale : 0 when `mask`, else y = x * scale, where keep for
// channel group g is the Philox4x32-10 keep-mask of cuda_convnet/random.py over that group's
// [rows, channels / groups] range at (seed, offset + g), and `threshold` = ceil(p * 2^24) in
// [0, 2^24]. With groups = 1 the mask depends on the flat index only (rows * channels is
// all that matters). Forward (train and test) and backward are all this one call with
// different scalars (see dropout.cuh). Throws std::invalid_argument on groups outside
// [1, kDropoutMaxGroups], channels % groups != 0, or offset + groups - 1 >= 2^64.
void dropout(const float* x, float* y, long long rows, long long channels, int groups, unsigned long long seed,
             unsigned long long offset, unsigned threshold, float scale, bool mask, cudaStream_t stream);

}  // namespace ccn
