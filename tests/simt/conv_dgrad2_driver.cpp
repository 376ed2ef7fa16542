// Runs conv_dgrad_kernel2 (csrc/conv_dgrad2.cuh, or a mutated copy found first on the
// include path) in every tile width on small ragged shapes, against a double-precision loop
// and bit for bit against conv_dgrad_kernel1, in whatever CCN_SIMT_ORDER is set. Launches
// the kernels directly (the launcher in csrc/conv_dgrad.cu would include the unmutated
// header). Prints "match ..." or "MISMATCH ..." per case; exit code 0 only if all match.
#include <conv_dgrad2.cuh>

#include "conv_dgrad.cuh"
#include "conv_cases.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

using namespace ccn;

namespace {

using namespace conv_cases;  // Case, shape_of, random_vec, dgrad_grid

// dx[n, h, w, g*Cg + c] = sum over (p, q, k in group g, r, s) with h = p*st + r - pt,
// w = q*st + s - pl of dy[n, p, q, k] * w[k, r, s, c].
std::vector<double> reference(const ConvShape& g, const std::vector<float>& dy, const std::vector<float>& w) {
  std::vector<double> dx((std::size_t)g.nhw * g.c, 0.0);
  for (int n = 0; n < g.n; ++n)
    for (int p = 0; p < g.p; ++p)
      for (int q = 0; q < g.q; ++q)
        for (int k = 0; k < g.k; ++k) {
          const int grp = k / g.kg;
          const double d = dy[(((std::size_t)n * g.p + p) * g.q + q) * g.k + k];
          for (int r = 0; r < g.r; ++r)
            for (int s = 0; s < g.s; ++s) {
              const int h = p * g.stride + r - g.pad_top, ww = q * g.stride + s - g.pad_left;
              if (h < 0 || h >= g.h || ww < 0 || ww >= g.w) continue;
              for (int c = 0; c < g.cg; ++c)
                dx[(((std::size_t)n * g.h + h) * g.w + ww) * g.c + grp * g.cg + c] +=
                    d * w[(((std::size_t)k * g.r + r) * g.s + s) * g.cg + c];
            }
        }
  return dx;
}

template <int BN>
bool run(const Case& cs) {
  ConvShape g = shape_of(cs);
  auto dy = random_vec((std::size_t)g.npq * g.k, 11);
  auto w = random_vec((std::size_t)g.k * g.rscg, 12);
  std::vector<float> dx((std::size_t)g.nhw * g.c, NAN), dx1(dx.size(), NAN);
  auto k2 = conv_dgrad_kernel2<BN>;
  CCN_LAUNCH(k2, dgrad_grid(g, kDgrad2BM, BN), dim3(dgrad2_threads<BN>()), dgrad2_smem_floats<BN>() * sizeof(float),
             nullptr)(dy.data(), w.data(), dx.data(), g);
  auto k1 = conv_dgrad_kernel1<kConvBM, kConvBN>;
  CCN_LAUNCH(k1, dgrad_grid(g, kConvBM, kConvBN), dim3(16, 16), kConvSmemFloats * sizeof(float), nullptr)(
      dy.data(), w.data(), dx1.data(), g);
  const auto want = reference(g, dy, w);
  double worst = 0;
  for (std::size_t i = 0; i < dx.size(); ++i) {
    double err = std::fabs(want[i] - dx[i]);
    if (!(err <= 1e-4 * (1 + std::fabs(want[i])))) worst = std::isnan(err) ? INFINITY : std::max(worst, err);
  }
  const bool same_bits = std::memcmp(dx.data(), dx1.data(), dx.size() * sizeof(float)) == 0;
  const bool ok = worst == 0 && same_bits;
  std::printf("%s dgrad2<%d> n=%d h=%d w=%d c=%d k=%d r=%d s=%d stride=%d pad=(%d,%d,%d,%d) groups=%d", ok ? "match"
              : "MISMATCH", BN, cs.n, cs.h, cs.w, cs.c, cs.k, cs.r, cs.s, cs.stride, cs.pt, cs.pb, cs.pl, cs.pr,
              cs.groups);
  if (worst > 0) std::printf(" worst=%g", worst);
  if (!same_bits) std::printf(" (kernel1 differs)");
  std::printf("\n");
  return ok;
}

}  // namespace

int main() {
  bool ok = true;
  // C/g = 48, K/g = 12: Kgemm = 108, 7 K tiles (the 3-stage ring wraps twice); 2 row tiles.
  ok &= run<48>({2, 9, 8, 96, 24, 3, 3, 1, 1, 1, 1, 1, 2});
  // C/g = 40 in a 64-wide tile (ragged columns), stride 2: 4 phases, asymmetric padding.
  ok &= run<64>({2, 11, 9, 40, 8, 3, 4, 2, 0, 1, 2, 0, 1});
  // C/g = 100: 3 column tiles of 48; K/g = 4 (the tap counters wrap 4 times per K step);
  // stride 3 with R = 2: phases with no taps (dx = 0 there).
  ok &= run<48>({1, 8, 10, 200, 8, 2, 3, 3, 1, 0, 0, 2, 2});
  // C/g = 132: 2 column tiles of 128; K/g = 20 (f wraps inside a K step); M = 110 < 128.
  ok &= run<128>({1, 10, 11, 132, 20, 3, 2, 1, 1, 1, 0, 1, 1});
  return ok ? 0 : 1;
}
