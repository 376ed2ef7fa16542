// Launcher of philox.cuh (contract in ops.h): the generator itself, exposed for its
// known-answer test and for anything that wants raw Philox words on the device.
#pragma once

#include "common.h"

namespace ccn {

// out[i, :] = Philox4x32-10(counters[i, :], keys[i, :]) for i < n: uint32 arrays of shapes
// (n, 4), (n, 2), (n, 4).
void philox4x32(const unsigned* counters, const unsigned* keys, unsigned* out, long long n, cudaStream_t stream);

}  // namespace ccn
