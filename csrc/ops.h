// Host launchers of every kernel: the C++ API that bindings.cpp exposes to Python.
// One header per op family (<family>.h, launchers in <family>.cu, kernels in <family>.cuh).
// Contract for every launcher: pointers are device pointers (host pointers under the
// emulator); sizes are explicit; it checks its preconditions (throwing
// std::invalid_argument), launches on `stream`, checks the launch, and returns without
// synchronising. Row-major everywhere; activations NHWC, filters KRSC (ARCHITECTURE.md §3).
#pragma once

#include "activation.h"
#include "augment.h"
#include "conv.h"
#include "copy.h"
#include "dropout.h"
#include "gemm.h"
#include "gemm_tc.h"
#include "lrn.h"
#include "philox.h"
#include "pool.h"
#include "sgd.h"
#include "softmax.h"
