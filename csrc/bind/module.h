// What every csrc/bind/<family>.h uses (csrc/common.h is found through the include path): pybind11, pointers passed as integers, streams.
#pragma once

#include <pybind11/pybind11.h>

#include <cstdint>

#include "common.h"

namespace py = pybind11;

template <typename T>
inline T* ptr(std::uintptr_t p) {
  return reinterpret_cast<T*>(p);
}
inline cudaStream_t stream_of(std::uintptr_t s) { return reinterpret_cast<cudaStream_t>(s); }
