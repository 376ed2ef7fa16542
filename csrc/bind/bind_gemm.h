// Python bindings of gemm.h (included by bindings.cpp, compiled into _C and _emu).
#pragma once

#include "bind/module.h"
#include "gemm.h"

inline void bind_gemm(py::module_& m) {
  m.def(
      "gemm",
      [](std::uintptr_t a, std::uintptr_t b, std::uintptr_t c, std::uintptr_t bias, int M, int N, int K, bool trans_a,
         bool trans_b, float alpha, float beta, bool relu, std::uintptr_t stream, int version,
         std::uintptr_t workspace, long long workspace_floats, int splits) {
        py::gil_scoped_release nogil;
        ccn::gemm(ptr<const float>(a), ptr<const float>(b), ptr<float>(c), ptr<const float>(bias), M, N, K, trans_a,
                  trans_b, alpha, beta, relu, stream_of(stream), version, ptr<float>(workspace), workspace_floats,
                  splits);
      },
      py::arg("a"), py::arg("b"), py::arg("c"), py::arg("bias"), py::arg("M"), py::arg("N"), py::arg("K"),
      py::arg("trans_a"), py::arg("trans_b"), py::arg("alpha") = 1.0f, py::arg("beta") = 0.0f,
      py::arg("relu") = false, py::arg("stream") = 0, py::arg("version") = 0, py::arg("workspace") = 0,
      py::arg("workspace_floats") = 0, py::arg("splits") = 0,
      "C[M,N] = alpha op(A) op(B) + beta C + bias, optional ReLU; version: 0 the launcher picks, 1 or 2 forces "
      "gemm_kernel1/2; split-K into `workspace` as gemm_plan says (none when splits = 0 and no workspace is "
      "given) (see csrc/gemm.h).");
  m.def(
      "gemm_version", [](int M, int N, int version) { return ccn::gemm_version(M, N, version); }, py::arg("M"),
      py::arg("N"), py::arg("version") = 0, "Which gemm_kernel<n> gemm(..., version) runs for an M x N output.");
  m.def(
      "gemm_plan",
      [](int M, int N, int K, int version, int splits) {
        ccn::GemmPlan p = ccn::gemm_plan(M, N, K, version, splits, ccn::device_sm_count());
        py::dict d;
        d["version"] = p.version;
        d["splits"] = p.splits;
        d["k_chunk"] = p.k_chunk;
        d["workspace_floats"] = p.workspace_floats;
        return d;
      },
      py::arg("M"), py::arg("N"), py::arg("K"), py::arg("version") = 0, py::arg("splits") = 0,
      "How gemm runs an M x N x K product on the current device: the kernel version, the split-K "
      "(slices, K per slice) and the workspace it needs (floats).");
  m.def(
      "bias_grad",
      [](std::uintptr_t dy, std::uintptr_t db, long long rows, int cols, std::uintptr_t stream) {
        py::gil_scoped_release nogil;
        ccn::bias_grad(ptr<const float>(dy), ptr<float>(db), rows, cols, stream_of(stream));
      },
      py::arg("dy"), py::arg("db"), py::arg("rows"), py::arg("cols"), py::arg("stream") = 0);
}
