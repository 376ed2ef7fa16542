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

// How conv2d_wgrad_tc splits its N*P*Q reduction (a function of the shape and chunk_rows
// only, never of the device). chunk_rows = 0 picks automatically; otherwise the rows per
// chunk (rounded up to a multiple of 16). workspace_floats: what conv2d_wgrad_tc needs
// (chunks x (|dw| + K) when split, else 0).
struct WgradTcPlan {
  int chunk_rows;
  int chunks;
  long long workspace_floats;
};
WgradTcPlan conv2d_wgrad_tc_plan(const ConvShape& g, int chunk_rows);

// dw = gradient of conv with respect to w; db[k] = sum of dy over N, P, Q (float32, not
// rounded; db may be null). Partial sums of each chunk go to `workspace` (at least
// plan.workspace_floats floats; may be null when that is 0) and are added in chunk order.
void conv2d_wgrad_tc(const float* x, const float* dy, float* dw, float* db, float* workspace,
                     long long workspace_floats, const ConvShape& g, int chunk_rows, int precision,
                     cudaStream_t stream);

}  // namespace ccn
