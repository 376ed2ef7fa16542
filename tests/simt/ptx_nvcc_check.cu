// nvcc compile check of csrc/ptx/ (tests/test_ptx.py): the emulator's test kernels, which
// use every wrapper, compiled for a real GPU; the test reads the SASS for HMMA, LDSM and
// LDGSTS. Non-template __global__ functions are always emitted, so including them is enough.
#include "ptx_kernels.cuh"
#include "ptx_pipeline.cuh"
