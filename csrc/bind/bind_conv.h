// Python bindings of the convolution kernels (conv_fwd, conv_dgrad, conv_wgrad).
#pragma once

#include "bind/module.h"

inline void bind_conv(py::module_& m) {
  (void)m;  // kernels of this family are not written yet
}
