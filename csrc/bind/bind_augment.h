// Python binding of the fused training-view kernel (csrc/augment.h), §4.1. Included by
// bindings.cpp, compiled into _C and _emu. Pointers are integers; sigma and P arrive as
// Python sequences of floats (host values: they travel in the kernel's parameters, so no
// device array and no copy). The Python side (cuda_convnet/backends/kernel_ops/augment.py)
// validates first; the launcher checks its own preconditions (-> ValueError).
#pragma once

#include <pybind11/stl.h>

#include <array>
#include <stdexcept>

#include "augment.h"
#include "bind/module.h"

inline void bind_augment(py::module_& m) {
  m.def(
      "train_views",
      [](std::uintptr_t images, std::uintptr_t mean, std::uintptr_t out, long long n, int h, int w, int crop,
         unsigned long long seed, unsigned long long offset, const std::array<float, 3>& sigma,
         const std::array<float, 9>& P, float lighting_std, std::uintptr_t stream) {
        py::gil_scoped_release nogil;
        ccn::train_views(ptr<const unsigned char>(images), ptr<const float>(mean), ptr<float>(out), n, h, w,
                                 crop, seed, offset, sigma.data(), P.data(), lighting_std, stream_of(stream));
      },
      py::arg("images"), py::arg("mean"), py::arg("out"), py::arg("n"), py::arg("h"), py::arg("w"), py::arg("crop"),
      py::arg("seed"), py::arg("offset"), py::arg("sigma"), py::arg("P"), py::arg("lighting_std"),
      py::arg("stream") = 0,
      "§4.1 training views: uint8 (n, h, w, 3) -> float32 (n, crop, crop, 3); mean 0 = none (see csrc/augment.h).");
}
