// Launcher for augment.cuh (see ops.h for the contract).
#include "augment.cuh"
#include "augment.h"

namespace ccn {

void train_views(const unsigned char* images, const float* mean, float* out, long long n, int h, int w,
                         int crop, unsigned long long seed, unsigned long long offset, const float* sigma,
                         const float* P, float lighting_std, cudaStream_t stream) {
  CCN_REQUIRE(n >= 0, "n must be >= 0");
  CCN_REQUIRE(n <= 0x7fffffffLL, "n must be < 2^31 (one grid column per image)");
  CCN_REQUIRE(h >= 1 && w >= 1, "h and w must be >= 1");
  CCN_REQUIRE(crop >= 1 && crop <= h && crop <= w,
              "crop must be in [1, min(h, w)], got " + std::to_string(crop) + " for " + std::to_string(h) + "x" +
                  std::to_string(w) + " images");
  CCN_REQUIRE(crop <= kAugmentMaxCrop, "crop must be <= " + std::to_string(kAugmentMaxCrop));
  CCN_REQUIRE(sigma && P, "null sigma or P");
  if (n == 0) return;
  CCN_REQUIRE(images && out, "null pointer");
  AugmentArgs a{};
  a.images = images;
  a.mean = mean;
  a.out = out;
  a.n = static_cast<int>(n);
  a.h = h;
  a.w = w;
  a.crop = crop;
  const int row_elems = 3 * crop;
  a.rows = (kAugmentTargetFloats + row_elems - 1) / row_elems;  // >= 1
  if (a.rows > crop) a.rows = crop;
  a.row_words = (row_elems + 3 + 3) / 4;  // ceil((3c + 3) / 4): a row may start 3 bytes into a word
  a.seed = seed;
  a.offset = offset;
  for (int k = 0; k < 3; ++k) a.sigma[k] = sigma[k];
  for (int k = 0; k < 9; ++k) a.P[k] = P[k];
  a.lighting_std = lighting_std;
  const bool vec = crop % 4 == 0 && aligned16(out);
  const dim3 grid(static_cast<unsigned>(n), ceil_div(crop, a.rows));
  const std::size_t smem = augment_smem_bytes(a.rows, a.row_words);  // <= 48 KB: no opt-in needed
  using Kernel = void (*)(const AugmentArgs);
  Kernel k = vec ? augment_train_views_kernel1<true> : augment_train_views_kernel1<false>;
  CCN_LAUNCH(k, grid, kAugmentThreads, smem, stream)(a);
  CCN_CHECK_LAUNCH("augment_train_views_kernel1");
}

}  // namespace ccn
