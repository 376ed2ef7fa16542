// Python bindings of activation.h (included by bindings.cpp, compiled into _C and _emu).
#pragma once

#include "bind/module.h"
#include "activation.h"

inline void bind_activation(py::module_& m) {
  m.def(
      "relu",
      [](std::uintptr_t x, std::uintptr_t y, long long n, std::uintptr_t stream) {
        py::gil_scoped_release nogil;
        ccn::relu(ptr<const float>(x), ptr<float>(y), n, stream_of(stream));
      },
      py::arg("x"), py::arg("y"), py::arg("n"), py::arg("stream") = 0);
  m.def(
      "relu_backward",
      [](std::uintptr_t y, std::uintptr_t dy, std::uintptr_t dx, long long n, std::uintptr_t stream) {
        py::gil_scoped_release nogil;
        ccn::relu_backward(ptr<const float>(y), ptr<const float>(dy), ptr<float>(dx), n, stream_of(stream));
      },
      py::arg("y"), py::arg("dy"), py::arg("dx"), py::arg("n"), py::arg("stream") = 0);
  m.def(
      "tanh",
      [](std::uintptr_t x, std::uintptr_t y, long long n, std::uintptr_t stream) {
        py::gil_scoped_release nogil;
        ccn::tanh(ptr<const float>(x), ptr<float>(y), n, stream_of(stream));
      },
      py::arg("x"), py::arg("y"), py::arg("n"), py::arg("stream") = 0);
  m.def(
      "tanh_backward",
      [](std::uintptr_t y, std::uintptr_t dy, std::uintptr_t dx, long long n, std::uintptr_t stream) {
        py::gil_scoped_release nogil;
        ccn::tanh_backward(ptr<const float>(y), ptr<const float>(dy), ptr<float>(dx), n, stream_of(stream));
      },
      py::arg("y"), py::arg("dy"), py::arg("dx"), py::arg("n"), py::arg("stream") = 0);
}
