// Launcher of sgd.cuh (contract in ops.h).
#pragma once

#include "common.h"

namespace ccn {

// One parameter tensor of the update: w and v are updated in place, g is read; n elements.
struct SgdTensor {
  float* w;
  const float* g;
  float* v;
  long long n;
};

// For every tensor: v = momentum*v - decay_lr*w - lr*g; w = w + v (paper §5, evaluated in
// the reference's order, without FMA contraction). decay_lr = weight_decay * lr, rounded
// to float32 once by the caller. All tensors in one launch (one per kSgdMaxTensors = 64
// tensors beyond that). Returns the number of kernel launches issued (0 when there is no
// element to update). The tensors must not overlap one another.
int sgd_update(const SgdTensor* tensors, int count, float lr, float momentum, float decay_lr, cudaStream_t stream);

}  // namespace ccn
