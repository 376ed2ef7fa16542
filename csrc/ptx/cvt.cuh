// Float32 -> TF32 / BF16 conversions (PTX ISA, "Data Movement and Conversion Instructions:
// cvt"), the operand rounding of the tensor-core paths (ARCHITECTURE.md §4, "Precision").
//
// cvt_rna_tf32(x)        cvt.rna.tf32.f32: round to nearest, ties away from zero, to 10
//                        explicit mantissa bits; returns the 32-bit register (the low 13
//                        bits are zero), the form mma.sync's .tf32 operands take.
// float_to_bf16_rn(x)    cvt.rn.bf16.f32: round to nearest, ties to even (PyTorch's
//                        .bfloat16()); returns the 16 bits.
// cvt_rn_bf16x2(lo, hi)  cvt.rn.bf16x2.f32 d, hi, lo: two roundings packed, `lo` in bits
//                        0-15 and `hi` in bits 16-31 (the PTX operand order is upper half
//                        first; this wrapper takes them in memory order, which is the order
//                        of consecutive elements in an mma fragment register).
//
// The models are bit-exact:
//   tf32: what nvcc 13 emits for sm_80 and sm_90 (checked with cuobjdump): a finite input
//         gets 0x1000 added to its bits (a carry out of the mantissa rounds the exponent up,
//         so FLT_MAX becomes +inf), then the low 13 bits are cleared; +-inf and NaN skip the
//         add, so a NaN keeps its sign and upper payload (a NaN whose payload lies only in
//         the low 13 bits comes out as inf; CUDA's own NaNs, 0x7fffffff, stay NaN).
//         Subnormals round like normals (no flush).
//   bf16: IEEE round-to-nearest-even on the upper 16 bits; any NaN becomes the canonical
//         bf16 NaN 0x7fff (as cuda_bf16.hpp's host conversion; PyTorch writes 0x7fc0).
//         Overflow past the largest bf16 gives inf; subnormals are kept.
#pragma once

#include "site.cuh"

namespace ccn {

#if defined(CCN_EMU)
namespace ptx_detail {
inline uint32_t tf32_rna_bits(uint32_t u) {
  if ((u & 0x7f800000u) != 0x7f800000u) u += 0x1000u;  // finite: round half away
  return u & 0xffffe000u;
}
inline uint16_t bf16_rn_bits(uint32_t u) {
  if ((u & 0x7fffffffu) > 0x7f800000u) return 0x7fffu;  // NaN
  u += 0x7fffu + ((u >> 16) & 1u);                     // half-ulp, ties to even
  return static_cast<uint16_t>(u >> 16);
}
}  // namespace ptx_detail
#endif

__device__ __forceinline__ uint32_t cvt_rna_tf32(float x) {
#if defined(__CUDA_ARCH__)
  uint32_t r;
  asm("cvt.rna.tf32.f32 %0, %1;\n" : "=r"(r) : "f"(x));
  return r;
#elif defined(CCN_EMU)
  return ptx_detail::tf32_rna_bits(ptx_detail::float_bits(x));
#else
  return 0;  // nvcc's host pass: device code is never run there
#endif
}

__device__ __forceinline__ uint16_t float_to_bf16_rn(float x) {
#if defined(__CUDA_ARCH__)
  unsigned short r;
  asm("cvt.rn.bf16.f32 %0, %1;\n" : "=h"(r) : "f"(x));
  return r;
#elif defined(CCN_EMU)
  return ptx_detail::bf16_rn_bits(ptx_detail::float_bits(x));
#else
  return 0;
#endif
}

__device__ __forceinline__ uint32_t cvt_rn_bf16x2(float lo, float hi) {
#if defined(__CUDA_ARCH__)
  uint32_t r;
  asm("cvt.rn.bf16x2.f32 %0, %1, %2;\n" : "=r"(r) : "f"(hi), "f"(lo));
  return r;
#elif defined(CCN_EMU)
  return static_cast<uint32_t>(ptx_detail::bf16_rn_bits(ptx_detail::float_bits(lo))) |
         (static_cast<uint32_t>(ptx_detail::bf16_rn_bits(ptx_detail::float_bits(hi))) << 16);
#else
  return 0;
#endif
}

}  // namespace ccn
