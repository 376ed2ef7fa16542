// Runs the convolution kernels of csrc/conv_fwd.cuh, conv_dgrad.cuh and conv_wgrad.cuh (or
// mutated copies found first on the include path) on small ragged shapes against a
// double-precision loop, in whatever CCN_SIMT_ORDER is set. Launches the kernels directly
// (the launchers in csrc/*.cu would include the unmutated headers). Usage:
//   conv_driver [fwd|dgrad|wgrad|all]      (default all)
// Prints "match ..." or "MISMATCH ..." per case; exit code 0 only if every case matches.
#include "conv_dgrad.cuh"
#include "conv_fwd.cuh"
#include "conv_wgrad.cuh"
#include "conv_cases.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

using namespace ccn;

namespace {

using namespace conv_cases;  // Case, shape_of, random_vec, dgrad_grid

// The naive definition, in double: y[n,p,q,k] = sum_{r,s,c} w[k,r,s,c] x[n, p*st+r-pt, q*st+s-pl, g*Cg+c].
// Calls visit(x index, w index, y index) for every contributing term.
template <typename Visit>
void for_each_term(const ConvShape& g, Visit visit) {
  for (int n = 0; n < g.n; ++n)
    for (int p = 0; p < g.p; ++p)
      for (int q = 0; q < g.q; ++q)
        for (int k = 0; k < g.k; ++k) {
          int grp = k / g.kg;
          for (int r = 0; r < g.r; ++r)
            for (int s = 0; s < g.s; ++s) {
              int h = p * g.stride + r - g.pad_top, w = q * g.stride + s - g.pad_left;
              if (h < 0 || h >= g.h || w < 0 || w >= g.w) continue;
              for (int c = 0; c < g.cg; ++c) {
                long xi = (((long)n * g.h + h) * g.w + w) * g.c + grp * g.cg + c;
                long wi = (((long)k * g.r + r) * g.s + s) * g.cg + c;
                long yi = (((long)n * g.p + p) * g.q + q) * g.k + k;
                visit(xi, wi, yi);
              }
            }
        }
}

bool compare(const char* what, const Case& cs, const std::vector<float>& got, const std::vector<double>& want) {
  double worst = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    double err = std::fabs(want[i] - got[i]);
    if (!(err <= 1e-4 * (1 + std::fabs(want[i])))) worst = std::isnan(err) ? INFINITY : std::max(worst, err);
  }
  std::printf("%s %s n=%d h=%d w=%d c=%d k=%d r=%d s=%d stride=%d pad=(%d,%d,%d,%d) groups=%d",
              worst > 0 ? "MISMATCH" : "match", what, cs.n, cs.h, cs.w, cs.c, cs.k, cs.r, cs.s, cs.stride, cs.pt,
              cs.pb, cs.pl, cs.pr, cs.groups);
  if (worst > 0) std::printf(" worst=%g", worst);
  std::printf("\n");
  return worst == 0;
}

bool run_fwd(const Case& cs, int version) {
  ConvShape g = shape_of(cs);
  auto x = random_vec((std::size_t)g.n * g.h * g.w * g.c, 1);
  auto w = random_vec((std::size_t)g.k * g.rscg, 2);
  auto b = random_vec(g.k, 3);
  std::vector<float> y((std::size_t)g.npq * g.k, NAN);
  if (version == 1) {
    dim3 grid(ceil_div(g.npq, kConvBM), ceil_div(g.kg, kConvBN), g.groups);
    CCN_LAUNCH(conv_fwd_kernel1, grid, dim3(16, 16), kConvSmemFloats * sizeof(float), nullptr)(
        x.data(), w.data(), b.data(), y.data(), g, false);
  } else {  // kernel2: C/g % 4 == 0 (std::vector's storage is 16-byte aligned); kernel3: any C/g
    dim3 grid(ceil_div(g.npq, kConvFwd2BM), ceil_div(g.kg, kConvFwd2BN), g.groups);
    CCN_LAUNCH(version == 2 ? conv_fwd_kernel2 : conv_fwd_kernel3, grid, dim3(16, 16),
               kConvFwd2SmemFloats * sizeof(float), nullptr)(x.data(), w.data(), b.data(), y.data(), g, false);
  }
  std::vector<double> want(y.size());
  for (std::size_t i = 0; i < want.size(); ++i) want[i] = b[i % g.k];
  for_each_term(g, [&](long xi, long wi, long yi) { want[yi] += double(x[xi]) * w[wi]; });
  return compare(version == 1 ? "fwd kernel1" : version == 2 ? "fwd kernel2" : "fwd kernel3", cs, y, want);
}

template <int BM, int BN>
bool run_dgrad(const Case& cs) {
  ConvShape g = shape_of(cs);
  auto dy = random_vec((std::size_t)g.npq * g.k, 4);
  auto w = random_vec((std::size_t)g.k * g.rscg, 5);
  std::vector<float> dx((std::size_t)g.nhw * g.c, NAN);
  auto kernel = conv_dgrad_kernel1<BM, BN>;
  constexpr std::size_t smem = conv_smem_floats<BM, BN>() * sizeof(float);
  CCN_LAUNCH(kernel, dgrad_grid(g, BM, BN), dim3(16, 16), smem, nullptr)(dy.data(), w.data(), dx.data(), g);
  std::vector<double> want(dx.size(), 0.0);
  for_each_term(g, [&](long xi, long wi, long yi) { want[xi] += double(dy[yi]) * w[wi]; });
  return compare(BM == 64 ? "dgrad<64,64>" : "dgrad<256,16>", cs, dx, want);
}

// dw partials of every chunk by conv_wgrad_kernel<version>, summed in chunk order.
std::vector<float> wgrad_of(const ConvShape& g, const std::vector<float>& x, const std::vector<float>& dy,
                            int chunk_rows, int version) {
  const long long dw_floats = (long long)g.k * g.rscg;
  const int chunks = static_cast<int>((g.npq + chunk_rows - 1) / chunk_rows);
  std::vector<float> parts((std::size_t)chunks * dw_floats, NAN), dw(dw_floats, NAN);
  if (version == 1) {
    dim3 grid(ceil_div(g.rscg, kConvBN), ceil_div(g.kg, kConvBM), chunks * g.groups);
    CCN_LAUNCH(conv_wgrad_kernel1, grid, dim3(16, 16), kConvSmemFloats * sizeof(float), nullptr)(
        x.data(), dy.data(), parts.data(), g, chunk_rows, dw_floats);
  } else {  // K/g % 4 == 0 (and for kernel2/4 C/g % 4 == 0); std::vector's storage is 16-byte aligned
    const bool wide = version >= 4;  // kernel4/5: the 96-filter tile
    dim3 grid(ceil_div(g.rscg, kWgrad2BN), ceil_div(g.kg, wide ? kWgrad4BM : kWgrad2BM), chunks * g.groups);
    auto kernel = version == 2   ? conv_wgrad_kernel2
                  : version == 3 ? conv_wgrad_kernel3
                  : version == 4 ? conv_wgrad_kernel4
                                 : conv_wgrad_kernel5;
    CCN_LAUNCH(kernel, grid, dim3(16, 16), (wide ? kWgrad4SmemFloats : kWgrad2SmemFloats) * sizeof(float),
               nullptr)(x.data(), dy.data(), parts.data(), g, chunk_rows, dw_floats);
  }
  CCN_LAUNCH(conv_sum_partials_kernel1, 3, 64, 0, nullptr)(parts.data(), dw.data(), chunks, dw_floats);
  return dw;
}

// versions: a bit mask of the kernels to run (1: kernel1, 2: kernel2, 4: kernel3, 8: kernel4,
// 16: kernel5); every one
// must match the double loop and all of them must agree bit for bit.
bool run_wgrad(const Case& cs, int chunk_rows, int versions = 1) {
  ConvShape g = shape_of(cs);
  auto x = random_vec((std::size_t)g.nhw * g.c, 6);
  auto dy = random_vec((std::size_t)g.npq * g.k, 7);
  std::vector<double> want((std::size_t)g.k * g.rscg, 0.0);
  for_each_term(g, [&](long xi, long wi, long yi) { want[wi] += double(dy[yi]) * x[xi]; });
  bool ok = true;
  std::vector<float> first;
  for (int version = 1; version <= 5; ++version) {
    if (!(versions & (1 << (version - 1)))) continue;
    std::vector<float> dw = wgrad_of(g, x, dy, chunk_rows, version);
    const std::string what = "wgrad kernel" + std::to_string(version);
    ok &= compare(what.c_str(), cs, dw, want);
    if (first.empty()) {
      first = dw;
    } else if (std::memcmp(first.data(), dw.data(), dw.size() * sizeof(float)) != 0) {
      std::printf("MISMATCH %s differs in some bit from the first kernel\n", what.c_str());
      ok = false;
    }
  }
  return ok;
}

}  // namespace

int main(int argc, char** argv) {
  std::string which = argc > 1 ? argv[1] : "all";
  bool all = which == "all", ok = true;
  if (all || which == "fwd") {
    ok &= run_fwd({2, 9, 8, 6, 70, 3, 2, 2, 1, 0, 2, 1, 2}, 1);   // Kgemm = 18: two K steps; K/g = 35
    ok &= run_fwd({1, 11, 11, 3, 5, 5, 5, 2, 2, 2, 2, 2, 1}, 1);  // C = 3, five K steps
    ok &= run_fwd({3, 10, 9, 4, 9, 2, 3, 1, 0, 1, 1, 0, 1}, 1);   // M = 270: five row tiles
    ok &= run_fwd({2, 9, 8, 8, 140, 3, 2, 2, 1, 0, 2, 1, 2}, 2);  // C/g = 4, Kgemm = 24: two K steps
    ok &= run_fwd({3, 10, 9, 4, 9, 2, 3, 1, 0, 1, 1, 0, 1}, 2);   // M = 270: three row tiles of 128
    ok &= run_fwd({1, 7, 6, 12, 20, 3, 3, 1, 1, 1, 1, 1, 1}, 2);  // Kgemm = 108: 7 K steps, the stages reused
    ok &= run_fwd({1, 11, 11, 3, 5, 5, 5, 2, 2, 2, 2, 2, 1}, 3);   // C = 3: taps straddle (r, s), 5 K steps
    ok &= run_fwd({2, 9, 8, 6, 70, 3, 2, 2, 1, 0, 2, 1, 2}, 3);    // C/g = 3, two groups, Kgemm = 18
    ok &= run_fwd({1, 9, 10, 5, 130, 3, 4, 1, 0, 2, 1, 1, 1}, 3);  // C = 5, K = 130: two column tiles
    ok &= run_fwd({1, 23, 22, 3, 8, 11, 11, 4, 2, 2, 2, 2, 1}, 3);  // conv1's filter, stride and padding
    ok &= run_fwd({1, 18, 17, 5, 6, 16, 16, 1, 1, 0, 0, 1, 1}, 3);  // Kgemm = 1280: the two table windows, full
    ok &= run_fwd({1, 5, 4, 143, 4, 3, 3, 1, 1, 1, 1, 1, 1}, 3);    // Kgemm = 1287: window 2 reuses window 0's half
  }
  if (all || which == "dgrad") {
    ok &= run_dgrad<kConvBM, kConvBN>({1, 7, 6, 40, 12, 3, 3, 2, 1, 1, 1, 1, 2});  // C/g = 20, 4 phases
    ok &= run_dgrad<kConvBM, kConvBN>({2, 9, 9, 20, 30, 3, 3, 1, 1, 1, 1, 1, 1});  // Kgemm = 270
    ok &= run_dgrad<256, 16>({2, 9, 9, 3, 20, 3, 3, 1, 1, 1, 1, 1, 1});             // C = 3, Kgemm = 180
    ok &= run_dgrad<256, 16>({2, 15, 14, 3, 12, 5, 5, 3, 2, 0, 1, 2, 1});           // 9 phases
  }
  if (all || which == "wgrad") {
    ok &= run_wgrad({2, 8, 8, 6, 10, 3, 3, 1, 1, 1, 1, 1, 2}, 48);     // N*P*Q = 128: 3 chunks of 3 K steps
    ok &= run_wgrad({1, 12, 11, 3, 70, 4, 3, 2, 0, 1, 2, 0, 1}, 1024);  // one chunk, M = 70: two row tiles
    // kernel2 (C/g, K/g % 4 == 0) and kernel3 (K/g % 4 == 0), and kernel1 on the same plan: the same bits.
    // kernel4/5: kernel2/3 with 96-filter tiles (K/g = 96, 192 and ragged: 104 = 96 + 8).
    ok &= run_wgrad({2, 8, 8, 8, 16, 3, 3, 1, 1, 1, 1, 1, 2}, 48, 31);   // 3 chunks of 3 K steps, Q = 8 < 16
    ok &= run_wgrad({1, 12, 11, 8, 264, 4, 5, 2, 0, 1, 2, 0, 1}, 1024, 7);  // 3 x 2 tiles of 128, N*P*Q = 25
    ok &= run_wgrad({40, 3, 3, 4, 4, 3, 3, 1, 0, 0, 0, 0, 1}, 32, 7);    // P = Q = 1: 16 images per K step
    ok &= run_wgrad({2, 13, 14, 3, 8, 5, 5, 2, 1, 2, 0, 1, 1}, 64, 5);   // C = 3: kernel3, 75 taps, 2 x 6 x 5 rows
    ok &= run_wgrad({1, 17, 9, 6, 16, 7, 7, 1, 3, 3, 3, 3, 2}, 48, 5);   // C/g = 3, 147 taps: two column tiles
    ok &= run_wgrad({1, 9, 9, 8, 384, 3, 3, 1, 1, 1, 1, 1, 2}, 48, 31);  // K/g = 192: two 96-row tiles per group
    ok &= run_wgrad({2, 11, 10, 3, 104, 3, 3, 2, 1, 0, 0, 1, 1}, 32, 21);  // C = 3, K = 104: a ragged 96-row tile
  }
  return ok ? 0 : 1;
}
