// Launcher of augment.cuh (contract in ops.h).
#pragma once

#include "common.h"

namespace ccn {

// §4.1 training views of a uint8 batch, fused (crop, flip, PCA lighting, mean), the recipe
// of cuda_convnet/reference/augment.py: images (n, h, w, 3) uint8 -> out (n, crop, crop, 3)
// float32. mean is (h, w, 3) float32 or null (no subtraction). sigma (3 floats) and P (9
// floats, row-major 3x3, column k the k-th eigenvector) are HOST pointers: they travel in
// the kernel's parameters. Image i draws with counter offset + i (mod 2^64) under key seed.
// One launch; requires 1 <= crop <= min(h, w), crop <= 8192, n < 2^31.
void train_views(const unsigned char* images, const float* mean, float* out, long long n, int h, int w,
                         int crop, unsigned long long seed, unsigned long long offset, const float* sigma,
                         const float* P, float lighting_std, cudaStream_t stream);

}  // namespace ccn
