// Launcher for dropout.cuh (see ops.h for the contract).
#include "dropout.cuh"
#include "dropout.h"

namespace ccn {

void dropout(const float* x, float* y, long long rows, long long channels, int groups, unsigned long long seed,
             unsigned long long offset, unsigned threshold, float scale, bool mask, cudaStream_t stream) {
  CCN_REQUIRE(rows >= 0 && channels >= 0, "rows and channels must be >= 0");
  CCN_REQUIRE(groups >= 1 && groups <= kDropoutMaxGroups, "groups must be in [1, 65535] (the grid's y dimension)");
  CCN_REQUIRE(channels % groups == 0, "channels must split into groups");
  CCN_REQUIRE(groups == 1 || offset <= ~0ull - static_cast<unsigned long long>(groups - 1),
              "offset + groups - 1 must be < 2^64");
  const long long n = rows * channels;
  if (n == 0) return;
  CCN_REQUIRE(x && y, "null pointer");
  CCN_REQUIRE(threshold <= (1u << 24), "threshold = ceil(p * 2^24) must be <= 2^24");
  // One group (or no mask: test mode scales every element alike) is one flat row: the mask of
  // element i is the plain contract's, and every full Philox block is a float4.
  if (groups == 1 || !mask) {
    rows = 1;
    channels = n;
    groups = 1;
  }
  const long long cg = channels / groups;
  using Kernel = void (*)(const float*, float*, long long, long long, long long, unsigned long long,
                          unsigned long long, unsigned, float);
  const bool vec = aligned16(x) && aligned16(y) && (groups == 1 || cg % 4 == 0);
  Kernel k = vec ? (mask ? dropout_kernel1<true, true> : dropout_kernel1<true, false>)
                 : (mask ? dropout_kernel1<false, true> : dropout_kernel1<false, false>);
  // A group's blocks as grid_stride_blocks sizes them, within an equal share of its cap for
  // all groups together (at least one block per group).
  const long long blocks_per_group = (rows * cg + 3) / 4;
  const unsigned need = grid_stride_blocks(blocks_per_group, 256);
  const unsigned share = grid_stride_blocks(1LL << 62, 256) / static_cast<unsigned>(groups);
  const dim3 grid(share < 1 ? 1 : (share < need ? share : need), static_cast<unsigned>(groups));
  CCN_LAUNCH(k, grid, 256, 0, stream)(x, y, rows, cg, channels, seed, offset, threshold, scale);
  CCN_CHECK_LAUNCH("dropout_kernel1");
}

}  // namespace ccn
