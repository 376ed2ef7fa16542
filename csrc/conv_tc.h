// Launchers of the tensor-core convolutions (conv_tc_fwd.cuh, conv_tc_dgrad.cuh,
// conv_tc_wgrad.cuh): the implicit GEMMs of conv.h with the operands rounded for the
// tensor cores, precision 0 = "tf32", 1 = "3xtf32", 2 = "bf16" (kGemmTc* in
// tc_mainloop.cuh; the semantics of gemm_tc.h). Layouts, padding and the shape limits as
// conv.h; x, w, y, dy, dx, dw are float32 in memory. Deterministic: no float atomics.
// Need sm_80 or newer on a GPU.
#pragma once

#include "conv.h"

namespace ccn {

// y = conv(x, w) + b, then ReLU if `relu`; b may be null; y must not alias x or w.
void conv2d_tc(const float* x, const float* w, const float* b, float* y, const ConvShape& g, bool relu,
               int precision, cudaStream_t stream);

// dx = gradient of conv with respect to x, given dy; overwrites every element of dx.
void conv2d_dgrad_tc(const float* dy, const float* w, float* dx, const ConvShape& g, int precision,
                     cudaStream_t stream);

}  // namespace ccn
