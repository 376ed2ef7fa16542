// Runs csrc/augment.cuh's kernel (or a mutated copy found first on the include path) on
// small shapes, several output-row chunks per image, against a scalar loop built from the
// same header's per-image helpers (the Python tests hold those to the NumPy recipe), in
// whatever CCN_SIMT_ORDER is set. Launches the kernel directly (the launcher in
// csrc/augment.cu would include the unmutated header). Prints "match ..." or
// "MISMATCH ..." per case; exit code 0 only if every case matches bit for bit.
#include "augment.cuh"

#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

using namespace ccn;

static bool run(int n, int h, int w, int crop, int rows, bool with_mean, unsigned long long seed,
                unsigned long long offset) {
  std::mt19937 rng(n * 131 + h * 17 + crop);
  std::vector<unsigned char> images(static_cast<std::size_t>(n) * h * w * 3 + 1);
  for (auto& v : images) v = static_cast<unsigned char>(1 + rng() % 255);
  std::vector<float> mean(static_cast<std::size_t>(h) * w * 3);
  for (auto& v : mean) v = static_cast<float>(rng() % 25500) / 100.f;
  std::vector<float> out(static_cast<std::size_t>(n) * crop * crop * 3, NAN);
  AugmentArgs a{};
  a.images = images.data() + 1;  // off a word boundary: every row has edge words
  a.mean = with_mean ? mean.data() : nullptr;
  a.out = out.data();
  a.n = n, a.h = h, a.w = w, a.crop = crop, a.rows = rows;
  a.row_words = (3 * crop + 6) / 4;
  a.seed = seed, a.offset = offset;
  const float sigma[3] = {64.8f, 24.7f, 9.75f}, P[9] = {0.58f, -0.71f, 0.4f, 0.57f, 0.02f, -0.82f, 0.58f, 0.7f, 0.41f};
  std::memcpy(a.sigma, sigma, sizeof sigma);
  std::memcpy(a.P, P, sizeof P);
  a.lighting_std = 0.1f;
  const bool vec = crop % 4 == 0;
  auto k = vec ? augment_train_views_kernel1<true> : augment_train_views_kernel1<false>;
  CCN_LAUNCH(k, dim3(n, ceil_div(crop, rows)), kAugmentThreads, augment_smem_bytes(rows, a.row_words), nullptr)(a);

  long long bad = 0;
  for (int i = 0; i < n; ++i) {
    const uint4 r0 = augment_philox(offset + i, 0u, seed);
    const int cy = static_cast<int>(r0.x % static_cast<unsigned>(h - crop + 1));
    const int cx = static_cast<int>(r0.y % static_cast<unsigned>(w - crop + 1));
    const bool flip = (r0.z >> 31) != 0;
    float delta[3];
    augment_lighting(a, augment_philox(offset + i, 1u, seed), delta);
    for (int y = 0; y < crop; ++y)
      for (int x = 0; x < crop; ++x)
        for (int ch = 0; ch < 3; ++ch) {
          const int sy = cy + y, sx = cx + (flip ? crop - 1 - x : x);
          const std::size_t src = (static_cast<std::size_t>(sy) * w + sx) * 3 + ch;
          float v = static_cast<float>(a.images[static_cast<std::size_t>(i) * h * w * 3 + src]);
          if (with_mean) v = __fsub_rn(v, mean[src]);
          v = __fadd_rn(v, delta[ch]);
          const float got = out[((static_cast<std::size_t>(i) * crop + y) * crop + x) * 3 + ch];
          if (std::memcmp(&got, &v, 4) != 0) ++bad;
        }
  }
  std::printf("%s n=%d %dx%d crop=%d rows=%d mean=%d (%lld wrong)\n", bad ? "MISMATCH" : "match", n, h, w, crop, rows,
              with_mean, bad);
  return bad == 0;
}

int main() {
  bool ok = true;
  ok &= run(3, 40, 40, 32, 5, true, 5, 0);                  // float4 stores, 7 chunks, last one partial
  ok &= run(2, 37, 37, 29, 4, true, 2012, ~0ull);          // scalar stores, odd sizes; offset wraps
  ok &= run(2, 40, 44, 32, 32, false, 1ull << 40, 77);     // one chunk, no mean, rectangular
  ok &= run(1, 9, 9, 7, 3, true, 9, 3);                    // tiny
  ok &= run(2, 13, 13, 13, 4, true, 1, 1);                 // crop = image: the last row ends the buffer
  return ok ? 0 : 1;
}
