// Launcher for sgd.cuh (see ops.h for the contract).
#include "sgd.cuh"
#include "sgd.h"

namespace ccn {

int sgd_update(const SgdTensor* tensors, int count, float lr, float momentum, float decay_lr, cudaStream_t stream) {
  CCN_REQUIRE(count >= 0, "count must be >= 0");
  CCN_REQUIRE(count == 0 || tensors, "null tensor table");
  for (int i = 0; i < count; ++i) {
    CCN_REQUIRE(tensors[i].n >= 0, "tensor " + std::to_string(i) + ": n must be >= 0");
    CCN_REQUIRE(tensors[i].n == 0 || (tensors[i].w && tensors[i].g && tensors[i].v),
                "tensor " + std::to_string(i) + ": null pointer");
  }
  int launches = 0;
  int i = 0;
  while (i < count) {
    SgdTable table{};
    int c = 0;
    table.unit_start[0] = 0;
    for (; i < count && c < kSgdMaxTensors; ++i) {
      const SgdTensor& t = tensors[i];
      if (t.n == 0) continue;  // nothing to update; keeps every table entry non-empty
      const bool vec = aligned16(t.w) && aligned16(t.g) && aligned16(t.v);
      table.w[c] = t.w;
      table.g[c] = t.g;
      table.v[c] = t.v;
      table.n[c] = t.n;
      table.n4[c] = vec ? t.n / 4 : 0;
      table.unit_start[c + 1] = table.unit_start[c] + table.n4[c] + (t.n - 4 * table.n4[c]);
      ++c;
    }
    table.count = c;
    if (c == 0) break;  // only empty tensors were left
    const long long units = table.unit_start[c];
    CCN_LAUNCH(sgd_update_kernel1, grid_stride_blocks(units, 256), 256, 0, stream)(table, lr, momentum, decay_lr);
    CCN_CHECK_LAUNCH("sgd_update_kernel1");
    ++launches;
  }
  return launches;
}

}  // namespace ccn
