// A kernel that writes one element past its dynamic shared memory. The emulator allocates
// exactly the launch's bytes, so the ASan build must report a heap-buffer-overflow.
#include "simt/simt.h"

#include <cstdio>

__global__ void off_by_one(float* out, int n) {
  CCN_DYNAMIC_SHARED(float, s);
  s[threadIdx.x + 1] = 1.f;  // thread n-1 writes s[n]: out of bounds
  __syncthreads();
  out[threadIdx.x] = s[threadIdx.x];
}

int main() {
  float out[32];
  CCN_LAUNCH(off_by_one, 1, 32, 32 * sizeof(float), nullptr)(out, 32);
  std::printf("finished without a report\n");
  return 0;
}
