// Shared plumbing of the PTX wrappers (csrc/ptx/*.cuh): the call-site parameters the
// emulator's models use to name a divergent warp collective, and bit casts.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstring>

#include "../common.h"

// Under the emulator each warp-collective wrapper takes two defaulted trailing parameters:
// the caller's file and line (GCC's __builtin_FILE/LINE), so lanes of one warp meet at
// the same collective only if they call it from the same place. Under nvcc they vanish.
// (A device function that itself calls a wrapper is one site for all of its callers; the
// emulator then cannot tell its call sites apart.)
#if defined(CCN_EMU)
#define CCN_PTX_SITE , const char *ccn_file = __builtin_FILE(), int ccn_line = __builtin_LINE()
#else
#define CCN_PTX_SITE
#endif

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
#error "csrc/ptx: mma.sync (tf32, bf16), ldmatrix and cp.async need sm_80 or newer"
#endif

namespace ccn {
namespace ptx_detail {
#if defined(__CUDA_ARCH__)
// The 32-bit shared-state-space address PTX's [addr] operands of .shared take.
__device__ __forceinline__ uint32_t smem_addr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}
#endif
#if defined(CCN_EMU)
inline uint32_t float_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
inline float bits_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
#endif
}  // namespace ptx_detail
}  // namespace ccn
