// Emulator self-test: correct kernels that use every emulated feature must give the exact
// answer in every thread order. Prints "ok <name>" per check; exits non-zero on failure.
#include "simt/simt.h"

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <cstdlib>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

static int failures = 0;
#define CHECK(cond, name)                                   \
  do {                                                      \
    if (cond) std::printf("ok %s\n", name);                 \
    else { std::printf("FAIL %s\n", name); ++failures; }    \
  } while (0)

// Tree reduction in dynamic shared memory: needs every __syncthreads.
__global__ void block_sum(const int* in, int* out, int n) {
  CCN_DYNAMIC_SHARED(int, s);
  int t = threadIdx.x;
  int i = blockIdx.x * blockDim.x + t;
  s[t] = i < n ? in[i] : 0;
  __syncthreads();
  for (int stride = blockDim.x / 2; stride > 0; stride /= 2) {
    if (t < stride) s[t] += s[t + stride];
    __syncthreads();
  }
  if (t == 0) out[blockIdx.x] = s[0];
}

// Warp reduction with shuffles, then one atomicAdd per warp.
__global__ void warp_sum(const float* in, float* total, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  float v = i < n ? in[i] : 0.f;
  for (int d = 16; d > 0; d /= 2) v += __shfl_down_sync(0xffffffffu, v, d);
  if ((threadIdx.x & 31) == 0) atomicAdd(total, v);
}

// Ballot and the other shuffles.
__global__ void warp_misc(unsigned* ballots, int* bcast, int* xored, int* up) {
  int lane = threadIdx.x & 31;
  unsigned b = __ballot_sync(0xffffffffu, lane % 3 == 0);
  int v = __shfl_sync(0xffffffffu, lane * 10, 7);
  int x = __shfl_xor_sync(0xffffffffu, lane, 1);
  int u = __shfl_up_sync(0xffffffffu, lane, 2);
  int g = threadIdx.x;
  ballots[g] = b;
  bcast[g] = v;
  xored[g] = x;
  up[g] = u;
}

// Static shared memory and a 2-D block: transpose through a tile.
__global__ void transpose(const float* in, float* out, int rows, int cols) {
  __shared__ float tile[16][17];
  int x = blockIdx.x * 16 + threadIdx.x, y = blockIdx.y * 16 + threadIdx.y;
  if (x < cols && y < rows) tile[threadIdx.y][threadIdx.x] = in[y * cols + x];
  __syncthreads();
  x = blockIdx.y * 16 + threadIdx.x;
  y = blockIdx.x * 16 + threadIdx.y;
  if (x < rows && y < cols) out[y * rows + x] = tile[threadIdx.x][threadIdx.y];
}

// Which OS thread ran each block (host code is legal here: this is the emulator).
static std::mutex g_mu;
static std::set<std::thread::id> g_os_threads;
__global__ void note_os_thread(int* out) {
  if (threadIdx.x == 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));  // let every worker take blocks
    std::lock_guard<std::mutex> lock(g_mu);
    g_os_threads.insert(std::this_thread::get_id());
  }
  out[blockIdx.x * blockDim.x + threadIdx.x] = 1;
}

int main() {
  {
    int n = 1000;
    std::vector<int> in(n), out(4, -1);
    long long want = 0;
    for (int i = 0; i < n; ++i) { in[i] = (i * 7919) % 1013; want += in[i]; }
    CCN_LAUNCH(block_sum, 4, 256, 256 * sizeof(int), nullptr)(in.data(), out.data(), n);
    long long got = 0;
    for (int v : out) got += v;
    CHECK(got == want, "block_sum");
  }
  {
    int n = 777;
    std::vector<float> in(n);
    float want = 0;
    for (int i = 0; i < n; ++i) { in[i] = float(i % 5); want += in[i]; }
    float total = 0;
    CCN_LAUNCH(warp_sum, (n + 127) / 128, 128, 0, nullptr)(in.data(), &total, n);
    CHECK(total == want, "warp_sum");
  }
  {
    std::vector<unsigned> b(64);
    std::vector<int> v(64), x(64), u(64);
    CCN_LAUNCH(warp_misc, 1, 64, 0, nullptr)(b.data(), v.data(), x.data(), u.data());
    unsigned want_b = 0;
    for (int l = 0; l < 32; ++l) if (l % 3 == 0) want_b |= 1u << l;
    bool ok = true;
    for (int g = 0; g < 64; ++g) {
      int l = g & 31;
      ok &= b[g] == want_b && v[g] == 70 && x[g] == (l ^ 1) && u[g] == (l < 2 ? l : l - 2);
    }
    CHECK(ok, "warp_misc");
  }
  {
    int rows = 37, cols = 53;
    std::vector<float> in(rows * cols), out(rows * cols, -1.f);
    for (int i = 0; i < rows * cols; ++i) in[i] = float(i);
    CCN_LAUNCH(transpose, dim3((cols + 15) / 16, (rows + 15) / 16), dim3(16, 16), 0, nullptr)(in.data(), out.data(), rows, cols);
    bool ok = true;
    for (int r = 0; r < rows; ++r)
      for (int c = 0; c < cols; ++c) ok &= out[c * rows + r] == in[r * cols + c];
    CHECK(ok, "transpose");
  }
  {
    // Blocks spread over CCN_SIMT_THREADS OS threads (the test runs with 2).
    std::vector<int> out(32 * 32, 0);
    CCN_LAUNCH(note_os_thread, 32, 32, 0, nullptr)(out.data());
    const char* want = std::getenv("CCN_SIMT_THREADS");
    size_t expected = want ? static_cast<size_t>(std::atoi(want)) : 1;
    bool all = true;
    for (int v : out) all &= v == 1;
    std::printf("blocks ran on %zu OS threads\n", g_os_threads.size());
    CHECK(all && g_os_threads.size() == expected, "blocks_over_os_threads");
  }
  {
    // rsqrtf is correctly rounded: checked on every float in [1, 4) against 1/sqrt in long
    // double. rsqrt(4^k x) = 2^-k rsqrt(x) exactly in double (no over- or underflow for any
    // positive float), so this binade pair covers every positive finite float.
    std::uint32_t bad = 0, first_bad = 0;
    for (std::uint32_t bits = 0x3f800000u; bits < 0x40800000u; ++bits) {
      float x;
      std::memcpy(&x, &bits, 4);
      const float r = rsqrtf(x);
      const long double e = 1.0L / std::sqrt(static_cast<long double>(x));
      const long double err = std::fabs(static_cast<long double>(r) - e);
      const float lo = std::nextafter(r, 0.f), hi = std::nextafter(r, 2.f);
      if (err > std::fabs(static_cast<long double>(lo) - e) || err > std::fabs(static_cast<long double>(hi) - e)) {
        if (!bad++) first_bad = bits;
      }
    }
    if (bad) std::printf("rsqrtf: %u of 2^24 not correctly rounded, first at 0x%08x\n", bad, first_bad);
    CHECK(bad == 0, "rsqrtf_correctly_rounded");
  }
  return failures ? 1 : 0;
}
