// Python bindings, compiled twice (ARCHITECTURE.md §4): into cuda_convnet._C, linked to the
// nvcc-built launchers, and into cuda_convnet._emu (CCN_EMU), linked to the same launchers
// built by g++ against the SIMT emulator. Functions take pointers as integers, explicit
// sizes and a stream; they release the GIL while the launcher runs. Python (cuda_convnet/
// backends/kernel_ops/*.py, with cuda_convnet/checks.py) checks dtypes, shapes and contiguity before calling; the launchers
// check their own preconditions and throw std::invalid_argument (-> ValueError).
// One csrc/bind/bind_<family>.h per op family, each defining bind_<family>(m).
#include <string>

#include "bind/bind_activation.h"
#include "bind/bind_augment.h"
#include "bind/module.h"
#include "bind/bind_conv.h"
#include "bind/bind_conv_tc.h"
#include "bind/bind_gemm.h"
#include "bind/bind_gemm_tc.h"
#include "bind/bind_memory_bound.h"

#ifndef CCN_MODULE_NAME
#error "CCN_MODULE_NAME must be _C or _emu"
#endif

namespace {

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

// Why device_count() is 0: "" when a device is present, else cudaGetDeviceCount's error
// (e.g. cudaErrorInsufficientDriver when the statically linked runtime is newer than the
// driver, cudaErrorNoDevice, cudaErrorNotPermitted).
std::string device_count_error() {
#if defined(CCN_EMU)
  return "the emulator build (_emu) has no CUDA devices";
#else
  int n = 0;
  cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    cudaGetLastError();
    int runtime = 0, driver = 0;
    cudaRuntimeGetVersion(&runtime);
    cudaDriverGetVersion(&driver);
    return std::string(cudaGetErrorName(e)) + ": " + cudaGetErrorString(e) + " (CUDA runtime " +
           std::to_string(runtime) + " linked into _C, driver supports " + std::to_string(driver) + ")";
  }
  return n > 0 ? "" : "cudaGetDeviceCount found no CUDA device";
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
  m.def("device_count_error", &device_count_error,
        "Why device_count() is 0 (cudaGetDeviceCount's error and the runtime/driver versions); '' when it is not.");

  bind_gemm(m);
  bind_gemm_tc(m);
  bind_activation(m);
  bind_conv(m);
  bind_conv_tc(m);
  bind_memory_bound(m);
  bind_augment(m);
}
