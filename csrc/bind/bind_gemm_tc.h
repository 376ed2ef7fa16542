// Python binding of gemm_tc.h (included by bindings.cpp, compiled into _C and _emu).
#pragma once

#include <string>

#include "bind/module.h"
#include "gemm_tc.h"

inline void bind_gemm_tc(py::module_& m) {
  m.def(
      "gemm_tc",
      [](std::uintptr_t a, std::uintptr_t b, std::uintptr_t c, std::uintptr_t bias, int M, int N, int K, bool trans_a,
         bool trans_b, float alpha, float beta, bool relu, const std::string& precision, std::uintptr_t stream) {
        int p = precision == "tf32" ? 0 : precision == "3xtf32" ? 1 : precision == "bf16" ? 2 : -1;
        if (p < 0) throw py::value_error("gemm_tc: precision must be 'tf32', '3xtf32' or 'bf16', got '" + precision + "'");
        py::gil_scoped_release nogil;
        ccn::gemm_tc(ptr<const float>(a), ptr<const float>(b), ptr<float>(c), ptr<const float>(bias), M, N, K,
                     trans_a, trans_b, alpha, beta, relu, p, stream_of(stream));
      },
      py::arg("a"), py::arg("b"), py::arg("c"), py::arg("bias"), py::arg("M"), py::arg("N"), py::arg("K"),
      py::arg("trans_a"), py::arg("trans_b"), py::arg("alpha") = 1.0f, py::arg("beta") = 0.0f,
      py::arg("relu") = false, py::arg("precision") = "tf32", py::arg("stream") = 0,
      "C[M,N] = alpha op(A) op(B) + beta C + bias, optional ReLU, on tensor cores (see csrc/gemm_tc.h).");
}
