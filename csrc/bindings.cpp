// Python bindings, compiled twice (DESIGN.md §4): into cuda_convnet._C, linked to the
// nvcc-built launchers, and into cuda_convnet._emu (CCN_EMU), linked to the same launchers
// built by g++ against the SIMT emulator. Functions take pointers as integers, explicit
// sizes and a stream; they release the GIL while the launcher runs. Python (cuda_convnet/
// backends/kernels.py) checks dtypes, shapes and contiguity before calling; the launchers
// check their own preconditions and throw std::invalid_argument (-> ValueError).
#include <pybind11/pybind11.h>

#include <cstdint>

#include "ops.h"

namespace py = pybind11;

#ifndef CCN_MODULE_NAME
#error "CCN_MODULE_NAME must be _C or _emu"
#endif

namespace {

template <typename T>
T* ptr(std::uintptr_t p) {
  return reinterpret_cast<T*>(p);
}
cudaStream_t stream_of(std::uintptr_t s) { return reinterpret_cast<cudaStream_t>(s); }

int device_count() {
#if defined(CCN_EMU)
  return 0;
#else
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // no driver or no device: clear the sticky error, report none
    return 0;
  }
  return n;
#endif
}

}  // namespace

PYBIND11_MODULE(CCN_MODULE_NAME, m) {
  m.doc() = "cuda_convnet kernels (" 
#if defined(CCN_EMU)
            "SIMT emulator build: host pointers, runs on the CPU"
#else
            "CUDA build: device pointers"
#endif
            ")";
#if defined(CCN_EMU)
  m.attr("emulated") = true;
#else
  m.attr("emulated") = false;
#endif
  m.def("device_count", &device_count, "Number of usable CUDA devices (0 without a driver or under the emulator).");

  m.def(
      "gemm",
      [](std::uintptr_t a, std::uintptr_t b, std::uintptr_t c, std::uintptr_t bias, int M, int N, int K, bool trans_a,
         bool trans_b, float alpha, float beta, bool relu, std::uintptr_t stream) {
        py::gil_scoped_release nogil;
        ccn::gemm(ptr<const float>(a), ptr<const float>(b), ptr<float>(c), ptr<const float>(bias), M, N, K, trans_a,
                  trans_b, alpha, beta, relu, stream_of(stream));
      },
      py::arg("a"), py::arg("b"), py::arg("c"), py::arg("bias"), py::arg("M"), py::arg("N"), py::arg("K"),
      py::arg("trans_a"), py::arg("trans_b"), py::arg("alpha") = 1.0f, py::arg("beta") = 0.0f,
      py::arg("relu") = false, py::arg("stream") = 0,
      "C[M,N] = alpha op(A) op(B) + beta C + bias, optional ReLU (see csrc/ops.h).");
  m.def(
      "bias_grad",
      [](std::uintptr_t dy, std::uintptr_t db, long long rows, int cols, std::uintptr_t stream) {
        py::gil_scoped_release nogil;
        ccn::bias_grad(ptr<const float>(dy), ptr<float>(db), rows, cols, stream_of(stream));
      },
      py::arg("dy"), py::arg("db"), py::arg("rows"), py::arg("cols"), py::arg("stream") = 0);
  m.def(
      "relu_forward",
      [](std::uintptr_t x, std::uintptr_t y, long long n, std::uintptr_t stream) {
        py::gil_scoped_release nogil;
        ccn::relu_forward(ptr<const float>(x), ptr<float>(y), n, stream_of(stream));
      },
      py::arg("x"), py::arg("y"), py::arg("n"), py::arg("stream") = 0);
  m.def(
      "relu_backward",
      [](std::uintptr_t y, std::uintptr_t dy, std::uintptr_t dx, long long n, std::uintptr_t stream) {
        py::gil_scoped_release nogil;
        ccn::relu_backward(ptr<const float>(y), ptr<const float>(dy), ptr<float>(dx), n, stream_of(stream));
      },
      py::arg("y"), py::arg("dy"), py::arg("dx"), py::arg("n"), py::arg("stream") = 0);
}
