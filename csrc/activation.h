// Launchers of activation.cuh (contract in ops.h).
#pragma once

#include "common.h"

namespace ccn {

// y = max(x, 0) (NaN stays NaN); dx = dy where y > 0, else 0.
void relu(const float* x, float* y, long long n, cudaStream_t stream);
void relu_backward(const float* y, const float* dy, float* dx, long long n, cudaStream_t stream);

// y = tanh(x); dx = dy * (1 - y*y) with y the forward output.
void tanh(const float* x, float* y, long long n, cudaStream_t stream);
void tanh_backward(const float* y, const float* dy, float* dx, long long n, cudaStream_t stream);

}  // namespace ccn
