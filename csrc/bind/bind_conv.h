// Python bindings of conv.h (conv2d, conv2d_dgrad, conv2d_wgrad; included by bindings.cpp,
// compiled into _C and _emu). Every function takes the geometry as the thirteen ints of
// make_conv_shape, which checks them before any pointer is touched.
#pragma once

#include "bind/module.h"
#include "conv.h"

// The geometry's keyword arguments, in make_conv_shape's order.
#define CCN_CONV_SHAPE_PARAMS                                                                                   \
  int n, int h, int w, int c, int k, int r, int s, int stride, int pad_top, int pad_bottom, int pad_left, \
      int pad_right, int groups
#define CCN_CONV_SHAPE_ARGS n, h, w, c, k, r, s, stride, pad_top, pad_bottom, pad_left, pad_right, groups
#define CCN_CONV_SHAPE_PYARGS                                                                                 \
  py::arg("n"), py::arg("h"), py::arg("w"), py::arg("c"), py::arg("k"), py::arg("r"), py::arg("s"),          \
      py::arg("stride"), py::arg("pad_top"), py::arg("pad_bottom"), py::arg("pad_left"), py::arg("pad_right"), \
      py::arg("groups")

inline void bind_conv(py::module_& m) {
  m.def(
      "conv2d",
      [](std::uintptr_t x, std::uintptr_t wt, std::uintptr_t b, std::uintptr_t y, CCN_CONV_SHAPE_PARAMS, bool relu,
         std::uintptr_t stream, int version) {
        ccn::ConvShape g = ccn::make_conv_shape(CCN_CONV_SHAPE_ARGS);
        py::gil_scoped_release nogil;
        ccn::conv2d(ptr<const float>(x), ptr<const float>(wt), ptr<const float>(b), ptr<float>(y), g, relu,
                    stream_of(stream), version);
      },
      py::arg("x"), py::arg("wt"), py::arg("b"), py::arg("y"), CCN_CONV_SHAPE_PYARGS, py::arg("relu") = false,
      py::arg("stream") = 0, py::arg("version") = 0,
      "y (N,P,Q,K) = conv(x (N,H,W,C), wt (K,R,S,C/groups)) + b, optional ReLU; b may be 0. version: 0 the "
      "launcher picks, 1, 2 or 3 forces conv_fwd_kernel1/2/3 (see csrc/conv.h).");
  m.def(
      "conv2d_version",
      [](std::uintptr_t x, std::uintptr_t wt, CCN_CONV_SHAPE_PARAMS, int version) {
        ccn::ConvShape g = ccn::make_conv_shape(CCN_CONV_SHAPE_ARGS);
        return ccn::conv2d_version(ptr<const float>(x), ptr<const float>(wt), g, version);
      },
      py::arg("x"), py::arg("wt"), CCN_CONV_SHAPE_PYARGS, py::arg("version") = 0,
      "Which conv_fwd_kernel<n> conv2d(..., version) runs for these pointers and this shape.");
  m.def(
      "conv2d_dgrad",
      [](std::uintptr_t dy, std::uintptr_t wt, std::uintptr_t dx, CCN_CONV_SHAPE_PARAMS, std::uintptr_t stream,
         int version) {
        ccn::ConvShape g = ccn::make_conv_shape(CCN_CONV_SHAPE_ARGS);
        py::gil_scoped_release nogil;
        ccn::conv2d_dgrad(ptr<const float>(dy), ptr<const float>(wt), ptr<float>(dx), g, stream_of(stream), version);
      },
      py::arg("dy"), py::arg("wt"), py::arg("dx"), CCN_CONV_SHAPE_PYARGS, py::arg("stream") = 0,
      py::arg("version") = 0,
      "dx (N,H,W,C) = gradient of the convolution with respect to its input. version: 0 the launcher picks, 1 or "
      "2 forces conv_dgrad_kernel1/2 (see csrc/conv.h).");
  m.def(
      "conv2d_dgrad_version",
      [](std::uintptr_t dy, std::uintptr_t wt, std::uintptr_t dx, CCN_CONV_SHAPE_PARAMS, int version) {
        ccn::ConvShape g = ccn::make_conv_shape(CCN_CONV_SHAPE_ARGS);
        return ccn::conv2d_dgrad_version(ptr<const float>(dy), ptr<const float>(wt), ptr<const float>(dx), g,
                                         version);
      },
      py::arg("dy"), py::arg("wt"), py::arg("dx"), CCN_CONV_SHAPE_PYARGS, py::arg("version") = 0,
      "Which conv_dgrad_kernel<n> conv2d_dgrad(..., version) runs for these pointers and this shape (dx 0: "
      "an output not yet allocated, 16-byte aligned).");
  m.def(
      "conv2d_dgrad_plan",
      [](CCN_CONV_SHAPE_PARAMS, int kernel) {
        ccn::DgradTile t = ccn::conv2d_dgrad_tile(ccn::make_conv_shape(CCN_CONV_SHAPE_ARGS), kernel);
        py::dict d;
        d["block_m"] = t.block_m;
        d["block_n"] = t.block_n;
        return d;
      },
      CCN_CONV_SHAPE_PYARGS, py::arg("kernel") = 2,
      "The block tile (block_m, block_n) conv_dgrad_kernel<kernel> (1 or 2) runs this shape in: kernel2's "
      "block_n is 48, 64 or 128, the fewest padded columns of C/groups (see csrc/conv_dgrad.cu).");
  m.def(
      "conv2d_wgrad_plan",
      [](CCN_CONV_SHAPE_PARAMS, int chunk_rows) {
        ccn::WgradPlan p = ccn::conv2d_wgrad_plan(ccn::make_conv_shape(CCN_CONV_SHAPE_ARGS), chunk_rows);
        py::dict d;
        d["chunk_rows"] = p.chunk_rows;
        d["chunks"] = p.chunks;
        d["bias_chunk_rows"] = p.bias_chunk_rows;
        d["bias_chunks"] = p.bias_chunks;
        d["workspace_floats"] = p.workspace_floats;
        return d;
      },
      CCN_CONV_SHAPE_PYARGS, py::arg("chunk_rows") = 0,
      "How conv2d_wgrad splits its N*P*Q reduction, and the workspace it needs (floats).");
  m.def(
      "conv2d_wgrad",
      [](std::uintptr_t x, std::uintptr_t dy, std::uintptr_t dw, std::uintptr_t db, std::uintptr_t workspace,
         long long workspace_floats, CCN_CONV_SHAPE_PARAMS, int chunk_rows, std::uintptr_t stream, int version) {
        ccn::ConvShape g = ccn::make_conv_shape(CCN_CONV_SHAPE_ARGS);
        py::gil_scoped_release nogil;
        ccn::conv2d_wgrad(ptr<const float>(x), ptr<const float>(dy), ptr<float>(dw), ptr<float>(db),
                          ptr<float>(workspace), workspace_floats, g, chunk_rows, stream_of(stream), version);
      },
      py::arg("x"), py::arg("dy"), py::arg("dw"), py::arg("db"), py::arg("workspace"), py::arg("workspace_floats"),
      CCN_CONV_SHAPE_PYARGS, py::arg("chunk_rows") = 0, py::arg("stream") = 0, py::arg("version") = 0,
      "dw (K,R,S,C/groups) and db (K,) (db may be 0) of the convolution, deterministic (see csrc/conv.h). "
      "version: 0 the launcher picks, 1-5 forces conv_wgrad_kernel1-5 (see csrc/conv.h).");
  m.def(
      "conv2d_wgrad_version",
      [](std::uintptr_t x, std::uintptr_t dy, CCN_CONV_SHAPE_PARAMS, int version) {
        ccn::ConvShape g = ccn::make_conv_shape(CCN_CONV_SHAPE_ARGS);
        return ccn::conv2d_wgrad_version(ptr<const float>(x), ptr<const float>(dy), g, version);
      },
      py::arg("x"), py::arg("dy"), CCN_CONV_SHAPE_PYARGS, py::arg("version") = 0,
      "Which conv_wgrad_kernel<n> conv2d_wgrad(..., version) runs for these pointers and this shape.");
}

#undef CCN_CONV_SHAPE_PARAMS
#undef CCN_CONV_SHAPE_ARGS
#undef CCN_CONV_SHAPE_PYARGS
