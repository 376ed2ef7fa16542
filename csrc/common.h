// What every kernel and launcher file includes: the CUDA runtime (nvcc build) or the SIMT
// emulator (g++ build, CCN_EMU), the one launch macro, the one dynamic-shared-memory macro,
// and the error helpers. Launchers throw; they never exit() their host process.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <stdexcept>
#include <string>

#if defined(CCN_EMU)
#include "simt/simt.h"  // defines CCN_LAUNCH and CCN_DYNAMIC_SHARED for the emulator
#define CCN_CHECK_LAUNCH(what) ((void)0)  // emulated launches throw ccn::simt::Error themselves
// Kernel parameters are copies held by the emulator's launch; the qualifier has no meaning
// (the toolkit's host_defines.h, pulled in by vector_types.h, may have defined it).
#undef __grid_constant__
#define __grid_constant__
#else
#include <cuda_runtime.h>
// CCN_LAUNCH(kernel, grid, block, smem, stream)(args...). `kernel` may be a function
// pointer (how launchers pick a template instantiation without commas in the macro).
#define CCN_LAUNCH(kernel, grid, block, smem, stream) (kernel)<<<(grid), (block), (smem), (stream)>>>
#define CCN_DYNAMIC_SHARED(type, name)                               \
  extern __shared__ __align__(16) unsigned char ccn_dynamic_smem_[]; \
  type* name = reinterpret_cast<type*>(ccn_dynamic_smem_)
#define CCN_CHECK_LAUNCH(what) ::ccn::check_launch((what), __FILE__, __LINE__)
#endif

namespace ccn {

// A violated precondition: becomes ValueError in Python.
#define CCN_REQUIRE(cond, msg)                                                     \
  do {                                                                             \
    if (!(cond)) throw std::invalid_argument(std::string(__func__) + ": " + (msg)); \
  } while (0)

#if !defined(CCN_EMU)
// CCN_SYNC_LAUNCHES=1 in the environment (read once, at the first launch): every launch is
// followed by a device synchronisation, so a fault inside a kernel is reported against
// that kernel (by name, with the launcher's file and line) instead of against whichever
// launch or copy happens to come next. A debugging mode: it serialises the GPU.
inline bool sync_launches() {
  static const bool on = [] {
    const char* v = std::getenv("CCN_SYNC_LAUNCHES");
    return v != nullptr && *v != '\0' && std::string(v) != "0";
  }();
  return on;
}

inline void check_launch(const char* what, const char* file, int line) {
  cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess)
    throw std::runtime_error(std::string(what) + " launch failed at " + file + ":" + std::to_string(line) + ": " +
                             cudaGetErrorString(e));
  if (sync_launches()) {
    e = cudaDeviceSynchronize();
    if (e != cudaSuccess)
      throw std::runtime_error(std::string(what) + " failed while running (CCN_SYNC_LAUNCHES=1: synchronised after "
                               "its launch at " + file + ":" + std::to_string(line) + "): " + cudaGetErrorString(e));
  }
}
#endif

// The largest extent (dimension, size, stride, padding, padded size, channel or class
// count) a launcher accepts; cuda_convnet/checks.py MAX_EXTENT refuses the same values on
// every backend first. Kernels index one extent in 32-bit int and step through it by at
// most one tile or block (<= 1024), so extent + 1024 still fits: a loop like
// `for (k0 = 0; k0 < K; k0 += 16)` or `for (c = tid; c < classes; c += blockDim.x)` never
// wraps. Products of extents are 64-bit wherever they can pass 2^31.
constexpr long long kMaxExtent = 0x7fffffffLL - 1024;
#define CCN_REQUIRE_EXTENT(value, name)                                                                    \
  CCN_REQUIRE((long long)(value) <= ::ccn::kMaxExtent,                                                    \
              std::string(name) + " = " + std::to_string((long long)(value)) + " is larger than " +      \
                  std::to_string(::ccn::kMaxExtent) + " (32-bit indices)")

// Host-side buffer checks of the launchers. A float count whose byte size fits a signed
// 64-bit integer with room to spare: workspaces (slices x M x N, chunks x |dw|) are refused
// above it instead of wrapping into a small, wrong size.
constexpr long long kMaxBufferFloats = 1LL << 60;
// a * b for counts >= 0, refused (std::invalid_argument naming `what`) above kMaxBufferFloats.
inline long long checked_floats(long long a, long long b, const char* what) {
  if (a < 0 || b < 0 || (a != 0 && b > kMaxBufferFloats / a))
    throw std::invalid_argument(std::string(what) + ": " + std::to_string(a) + " x " + std::to_string(b) +
                                " floats is larger than 2^60 (a 64-bit byte count)");
  return a * b;
}
// Whether the floats [p, p + p_floats) and [q, q + q_floats) share a byte; a null pointer or
// an empty range shares none. 128-bit ends: extents near 2^62 floats cannot wrap.
inline bool floats_overlap(const void* p, long long p_floats, const void* q, long long q_floats) {
  if (!p || !q || p_floats <= 0 || q_floats <= 0) return false;
  using U = unsigned __int128;
  const U a = reinterpret_cast<std::uintptr_t>(p), b = reinterpret_cast<std::uintptr_t>(q);
  return a < b + (U)q_floats * sizeof(float) && b < a + (U)p_floats * sizeof(float);
}
// An output (written) must share no byte with an input or another output: a kernel that reads
// what other threads write gives a thread-order-dependent answer.
#define CCN_REQUIRE_DISJOINT(out, out_floats, in, in_floats)                                         \
  CCN_REQUIRE(!::ccn::floats_overlap((out), (out_floats), (in), (in_floats)),                       \
              std::string(#out) + " and " + #in + " overlap in memory (" + #out + " is written while " + \
                  #in + " is read or written)")

inline unsigned ceil_div(long long a, long long b) { return static_cast<unsigned>((a + b - 1) / b); }
inline bool aligned16(const void* p) { return (reinterpret_cast<std::uintptr_t>(p) & 15u) == 0; }

// The multiprocessor count of the current device, for launchers that size their grid to fill
// the card (whole waves); the emulator reports a fixed count (simt::kMultiprocessorCount).
// Throws std::runtime_error when the runtime cannot tell.
inline int device_sm_count() {
#if defined(CCN_EMU)
  return ::ccn::simt::kMultiprocessorCount;
#else
  int dev = 0, n = 0;
  cudaError_t e = cudaGetDevice(&dev);
  if (e == cudaSuccess) e = cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev);
  if (e != cudaSuccess) {
    cudaGetLastError();  // not sticky: keep it from being reported against the next launch
    throw std::runtime_error(std::string("device_sm_count: ") + cudaGetErrorString(e));
  }
  if (n < 1) throw std::runtime_error("device_sm_count: the device reports no multiprocessors");
  return n;
#endif
}

// Blocks for a grid-stride kernel over `work_items` independent items: enough to fill an
// H100 (132 SMs x 2048 threads = 1056 blocks of 256) and no more; each thread then loops.
inline unsigned grid_stride_blocks(long long work_items, int threads) {
  long long b = (work_items + threads - 1) / threads;
  long long cap = 132LL * 2048 / threads;
  return static_cast<unsigned>(b < 1 ? 1 : (b > cap ? cap : b));
}

}  // namespace ccn
