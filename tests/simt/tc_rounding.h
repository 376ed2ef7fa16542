// The operand rounding of the tensor-core precisions, for the emulator drivers'
// double-precision references (conv_tc_driver.cpp, gemm_tc_driver.cpp): x as the kernels'
// fragment loads round it (tf32: round to nearest, ties away; bf16: round to nearest even;
// 3xtf32: the reference takes x unrounded).
#pragma once

#include <cstdint>

// <...>: the same copy (the real one or a mutant first on the include path) as the kernels.
#include <tc_mainloop.cuh>

inline float rounded(float x, int p) {
  const uint32_t u = ccn::ptx_detail::float_bits(x);
  if (p == ccn::kGemmTcTF32) return ccn::ptx_detail::bits_float(ccn::ptx_detail::tf32_rna_bits(u));
  if (p == ccn::kGemmTcBF16) return ccn::ptx_detail::bits_float(uint32_t(ccn::ptx_detail::bf16_rn_bits(u)) << 16);
  return x;
}
