// Python bindings of the memory-bound kernels (lrn, pool, dropout, softmax, sgd, copy, tanh).
#pragma once

#include "bind/module.h"

inline void bind_memory_bound(py::module_& m) {
  (void)m;  // kernels of this family are not written yet
}
