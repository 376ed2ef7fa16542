// Planted bugs the emulator must report as errors, not hangs: prints one line per case.
#include "simt/simt.h"

#include <cstdio>
#include <string>

__global__ void divergent_exit(int* out) {
  // Half the block returns, the other half waits at a barrier they never reach.
  if (threadIdx.x >= 16) return;
  __syncthreads();
  out[threadIdx.x] = 1;
}

__global__ void divergent_sites(int* out) {
  if (threadIdx.x < 16) {
    __syncthreads();
  } else {
    __syncthreads();
  }
  out[threadIdx.x] = 1;
}

__global__ void warp_vs_block(int* out) {
  // Lane 0 waits at __syncthreads while the rest of its warp waits at a full-mask shuffle.
  int v = threadIdx.x;
  if (threadIdx.x == 0) __syncthreads();
  else v = __shfl_sync(0xffffffffu, v, 0);
  out[threadIdx.x] = v;
}

template <typename F>
static void expect_error(const char* name, F f, const char* needle) {
  try {
    f();
    std::printf("NOT CAUGHT %s\n", name);
  } catch (const ccn::simt::Error& e) {
    std::string msg = e.what();
    std::printf("%s %s: %s\n", msg.find(needle) != std::string::npos ? "caught" : "WRONG MESSAGE", name, e.what());
  }
}

int main() {
  int out[64] = {0};
  expect_error("divergent_exit", [&] { CCN_LAUNCH(divergent_exit, 2, 32, 0, nullptr)(out); }, "divergent");
  expect_error("divergent_sites", [&] { CCN_LAUNCH(divergent_sites, 1, 32, 0, nullptr)(out); }, "different barriers");
  expect_error("warp_vs_block", [&] { CCN_LAUNCH(warp_vs_block, 1, 32, 0, nullptr)(out); }, "deadlock");
  return 0;
}
