// Python bindings of conv_tc.h (included by bindings.cpp, compiled into _C and _emu). The
// geometry is the thirteen keyword ints of make_conv_shape; `precision` is "tf32",
// "3xtf32" or "bf16" (the float32 SIMT kernels, "fp32", are bind_conv.h's).
#pragma once

#include <string>

#include "bind/module.h"
#include "conv_tc.h"

namespace ccn_bind_conv_tc {
inline int precision_code(const char* op, const std::string& precision) {
  int p = precision == "tf32" ? 0 : precision == "3xtf32" ? 1 : precision == "bf16" ? 2 : -1;
  if (p < 0)
    throw py::value_error(std::string(op) + ": precision must be 'tf32', '3xtf32' or 'bf16', got '" + precision +
                          "'");
  return p;
}
}  // namespace ccn_bind_conv_tc

#define CCN_CONV_TC_SHAPE_PARAMS                                                                                \
  int n, int h, int w, int c, int k, int r, int s, int stride, int pad_top, int pad_bottom, int pad_left, \
      int pad_right, int groups
#define CCN_CONV_TC_SHAPE_ARGS n, h, w, c, k, r, s, stride, pad_top, pad_bottom, pad_left, pad_right, groups
#define CCN_CONV_TC_SHAPE_PYARGS                                                                              \
  py::arg("n"), py::arg("h"), py::arg("w"), py::arg("c"), py::arg("k"), py::arg("r"), py::arg("s"),          \
      py::arg("stride"), py::arg("pad_top"), py::arg("pad_bottom"), py::arg("pad_left"), py::arg("pad_right"), \
      py::arg("groups")

inline void bind_conv_tc(py::module_& m) {
  m.def(
      "conv2d_tc",
      [](std::uintptr_t x, std::uintptr_t wt, std::uintptr_t b, std::uintptr_t y, CCN_CONV_TC_SHAPE_PARAMS, bool relu,
         const std::string& precision, std::uintptr_t stream) {
        int p = ccn_bind_conv_tc::precision_code("conv2d_tc", precision);
        ccn::ConvShape g = ccn::make_conv_shape(CCN_CONV_TC_SHAPE_ARGS);
        py::gil_scoped_release nogil;
        ccn::conv2d_tc(ptr<const float>(x), ptr<const float>(wt), ptr<const float>(b), ptr<float>(y), g, relu, p,
                       stream_of(stream));
      },
      py::arg("x"), py::arg("wt"), py::arg("b"), py::arg("y"), CCN_CONV_TC_SHAPE_PYARGS, py::arg("relu") = false,
      py::arg("precision") = "tf32", py::arg("stream") = 0,
      "y (N,P,Q,K) = conv(x (N,H,W,C), wt (K,R,S,C/groups)) + b on tensor cores, optional ReLU; b may be 0 "
      "(see csrc/conv_tc.h).");
  m.def(
      "conv2d_dgrad_tc",
      [](std::uintptr_t dy, std::uintptr_t wt, std::uintptr_t dx, CCN_CONV_TC_SHAPE_PARAMS,
         const std::string& precision, std::uintptr_t stream) {
        int p = ccn_bind_conv_tc::precision_code("conv2d_dgrad_tc", precision);
        ccn::ConvShape g = ccn::make_conv_shape(CCN_CONV_TC_SHAPE_ARGS);
        py::gil_scoped_release nogil;
        ccn::conv2d_dgrad_tc(ptr<const float>(dy), ptr<const float>(wt), ptr<float>(dx), g, p, stream_of(stream));
      },
      py::arg("dy"), py::arg("wt"), py::arg("dx"), CCN_CONV_TC_SHAPE_PYARGS, py::arg("precision") = "tf32",
      py::arg("stream") = 0,
      "dx (N,H,W,C) = gradient of the convolution with respect to its input, on tensor cores (see csrc/conv_tc.h).");
  m.def(
      "conv2d_wgrad_tc_plan",
      [](CCN_CONV_TC_SHAPE_PARAMS, int chunk_rows) {
        ccn::WgradTcPlan p = ccn::conv2d_wgrad_tc_plan(ccn::make_conv_shape(CCN_CONV_TC_SHAPE_ARGS), chunk_rows);
        py::dict d;
        d["chunk_rows"] = p.chunk_rows;
        d["chunks"] = p.chunks;
        d["workspace_floats"] = p.workspace_floats;
        return d;
      },
      CCN_CONV_TC_SHAPE_PYARGS, py::arg("chunk_rows") = 0,
      "How conv2d_wgrad_tc splits its N*P*Q reduction, and the workspace it needs (floats).");
  m.def(
      "conv2d_wgrad_tc",
      [](std::uintptr_t x, std::uintptr_t dy, std::uintptr_t dw, std::uintptr_t db, std::uintptr_t workspace,
         long long workspace_floats, CCN_CONV_TC_SHAPE_PARAMS, int chunk_rows, const std::string& precision,
         std::uintptr_t stream) {
        int p = ccn_bind_conv_tc::precision_code("conv2d_wgrad_tc", precision);
        ccn::ConvShape g = ccn::make_conv_shape(CCN_CONV_TC_SHAPE_ARGS);
        py::gil_scoped_release nogil;
        ccn::conv2d_wgrad_tc(ptr<const float>(x), ptr<const float>(dy), ptr<float>(dw), ptr<float>(db),
                             ptr<float>(workspace), workspace_floats, g, chunk_rows, p, stream_of(stream));
      },
      py::arg("x"), py::arg("dy"), py::arg("dw"), py::arg("db"), py::arg("workspace"), py::arg("workspace_floats"),
      CCN_CONV_TC_SHAPE_PYARGS, py::arg("chunk_rows") = 0, py::arg("precision") = "tf32", py::arg("stream") = 0,
      "dw (K,R,S,C/groups) on tensor cores and db (K,) in float32 (db may be 0), deterministic split-K "
      "(see csrc/conv_tc.h).");
}

#undef CCN_CONV_TC_SHAPE_PARAMS
#undef CCN_CONV_TC_SHAPE_ARGS
#undef CCN_CONV_TC_SHAPE_PYARGS
