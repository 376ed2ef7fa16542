// The tap walker of the tensor-core convolution loaders (conv_tc_fwd.cuh, conv_tc_dgrad.cuh):
// the GEMM column k = (r*S + s)*CG + c of an implicit-GEMM convolution (forward: CG = C/g,
// c a channel; dgrad: CG = K/g, c a filter of the group) kept as counters (r, s, c) and an
// element offset off = r*wr + s*ws + c*wc, decoded by division once before the K loop and
// moved d columns on per copy or per K step with adds and compares only (the manner of
// conv_fwd_kernel3 and conv_dgrad_kernel2): no division by a run-time value in the loop.
//
// advance() takes the radices and the offset's increments as arguments, not as members:
// the callers pass ConvShape fields (kernel parameters, read from the constant bank) and
// small expressions of them, so a walker costs four registers (r, s, c, off) and nothing
// for its step. The carry is a loop that runs once per filter column crossed: at most
// once per call where d <= CG (AlexNet: d = 16 and CG >= 48, or d <= 2); a single
// compare where the caller knows it (d = 1). r is not bounded:
// past the last tap the counters keep going and the loaders test k < Kgemm, not r < R.
// The offset is 32-bit: the launchers check that it fits (conv_tc.cu).
#pragma once

#include "common.h"

namespace ccn {

struct ConvTcTap {
  int r, s, c, off;

  // The tap of column k (divisions: before the K loop only).
  __device__ __forceinline__ void start(int k, int cg, int sdim, int wr, int ws, int wc) {
    const int rs = k / cg;
    c = k - rs * cg;
    r = rs / sdim;
    s = rs - r * sdim;
    off = r * wr + s * ws + c * wc;
  }

  // Moves the tap d columns on: off grows by d_off (= d*wc), plus carry_c (= ws - cg*wc)
  // for each wrap of c into the next filter column and carry_s (= wr - sdim*ws) for each
  // wrap of s into the next filter row. ONE_WRAP: the caller guarantees d <= cg, so c
  // wraps at most once (an if, not a loop, in the machine code).
  template <bool ONE_WRAP = false>
  __device__ __forceinline__ void advance(int d, int cg, int sdim, int d_off, int carry_c, int carry_s) {
    c += d;
    off += d_off;
    while (c >= cg) {
      c -= cg;
      off += carry_c;
      if (++s == sdim) {
        s = 0;
        ++r;
        off += carry_s;
      }
      if (ONE_WRAP) break;
    }
  }
};

}  // namespace ccn
