// Launchers of copy.cuh (contract in ops.h).
#pragma once

#include "common.h"

namespace ccn {

// whole is [rows, sum(channels)] row-major; part i is [rows, channels[i]]. Parts are laid
// side by side in order: part i occupies channels [sum(channels[:i]), sum(channels[:i+1])).
// concat copies the parts into whole; split copies whole into the parts, adding
// beta[i] * part_i where beta (count entries, or null: all 0) is non-zero (part_i is not
// read where beta[i] == 0). Parts must not overlap whole. One launch per kMaxChannelParts = 32 parts (AlexNet's towers: one).
// Returns the number of launches.
int concat_channels(float* whole, const float* const* parts, const int* channels, int count, long long rows,
                    cudaStream_t stream);
int split_channels(const float* whole, float* const* parts, const int* channels, int count, long long rows,
                   cudaStream_t stream, const float* beta = nullptr);

}  // namespace ccn
