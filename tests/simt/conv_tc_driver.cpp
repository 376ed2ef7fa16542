// Runs the tensor-core convolutions (csrc/conv_tc_fwd.cuh, conv_tc_dgrad.cuh,
// conv_tc_wgrad.cuh, and tc_mainloop.cuh under them; or mutated copies found first on the
// include path) on ragged shapes with stride, asymmetric padding and groups, every
// precision and both copy widths, against a double-precision loop over the operands
// rounded as the precision rounds them (3xtf32: unrounded), in whatever CCN_SIMT_ORDER is
// set. Prints "match" or "MISMATCH ..." per case; exit code 0 only if every case matches.
#include "conv_tc_dgrad.cuh"
#include "conv_tc_fwd.cuh"
#include "conv_tc_wgrad.cuh"
#include "conv_wgrad_reduce.cuh"

#include "tc_rounding.h"

#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

using namespace ccn;

static const char* name(int p) { return p == kGemmTcTF32 ? "tf32" : p == kGemmTc3xTF32 ? "3xtf32" : "bf16"; }

struct Case {
  ConvShape g;
  std::vector<float> x, w, b, dy;
};

// Random tensors, 4 floats longer than needed: a kernel may be handed them at an offset
// of 1 float (4-byte but not 16-byte aligned).
static Case make(const ConvShape& g, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  Case c{g, std::vector<float>(g.n * g.h * g.w * g.c + 4), std::vector<float>(g.k * g.rscg + 4),
         std::vector<float>(g.k), std::vector<float>(g.npq * g.k + 4)};
  for (auto* v : {&c.x, &c.w, &c.b, &c.dy})
    for (auto& e : *v) e = u(rng);
  return c;
}

// x[n, hh, ww, grp*cg + c] or 0 outside the image.
static double xat(const ConvShape& g, const float* x, int n, int hh, int ww, int ch, int p) {
  if (hh < 0 || hh >= g.h || ww < 0 || ww >= g.w) return 0;
  return rounded(x[((long long)(n * g.h + hh) * g.w + ww) * g.c + ch], p);
}

static bool report(const char* what, int p, const ConvShape& g, bool vec, double worst) {
  std::printf("%s %s %s N=%d H=%d W=%d C=%d K=%d R=%d S=%d stride=%d groups=%d vec=%d", worst > 0 ? "MISMATCH" : "match",
              what, name(p), g.n, g.h, g.w, g.c, g.k, g.r, g.s, g.stride, g.groups, vec);
  if (worst > 0) std::printf(" worst=%g", worst);
  std::printf("\n");
  return worst == 0;
}

static void tally(double& worst, double want, float got) {
  double err = std::fabs(want - got);
  if (!(err <= 1e-4 * (1 + std::fabs(want)))) worst = std::isnan(err) ? INFINITY : std::max(worst, err);
}

template <int P, bool VEC>
static bool fwd(const ConvShape& g, int offset) {
  Case c = make(g, g.n * 7 + g.c * 13 + g.k + P);
  const float *x = c.x.data() + offset, *w = c.w.data() + offset;
  std::vector<float> y(g.npq * g.k, NAN);
  using T = ConvTcFwdTile<P, VEC>;
  dim3 grid(ceil_div(g.npq, T::BM), ceil_div(g.kg, T::BN), g.groups);
  CCN_LAUNCH((conv_tc_fwd_kernel1<P, VEC>), grid, kConvTcThreads, T::SMEM_FLOATS * sizeof(float), nullptr)(
      x, w, c.b.data(), y.data(), g, true);
  double worst = 0;
  for (int n = 0; n < g.n; ++n)
    for (int p = 0; p < g.p; ++p)
      for (int q = 0; q < g.q; ++q)
        for (int k = 0; k < g.k; ++k) {
          int grp = k / g.kg;
          double s = c.b[k];
          for (int r = 0; r < g.r; ++r)
            for (int t = 0; t < g.s; ++t)
              for (int ch = 0; ch < g.cg; ++ch)
                s += xat(g, x, n, p * g.stride - g.pad_top + r, q * g.stride - g.pad_left + t, grp * g.cg + ch, P) *
                     double(rounded(w[((long long)k * g.r + r) * g.s * g.cg + t * g.cg + ch], P));
          tally(worst, s > 0 ? s : 0, y[((long long)(n * g.p + p) * g.q + q) * g.k + k]);
        }
  return report("fwd", P, g, VEC, worst);
}

template <int P, bool VEC>
static bool dgrad(const ConvShape& g, int offset) {
  Case c = make(g, g.n * 5 + g.c * 11 + g.k + P);
  const float *dy = c.dy.data() + offset, *w = c.w.data() + offset;
  std::vector<float> dx(g.n * g.h * g.w * g.c, NAN);
  dim3 grid(ceil_div(g.nhw, 128), ceil_div(g.cg, 64), g.groups);
  CCN_LAUNCH((conv_tc_dgrad_kernel1<P, VEC>), grid, kConvTcDgradThreads,
             ConvTcDgradTile<P>::SMEM_FLOATS * sizeof(float), nullptr)(dy, w, dx.data(), g);
  // Scatter form of the reference: every (output, tap) pair adds to the input it read.
  std::vector<double> want(dx.size(), 0.0);
  for (int n = 0; n < g.n; ++n)
    for (int p = 0; p < g.p; ++p)
      for (int q = 0; q < g.q; ++q)
        for (int k = 0; k < g.k; ++k) {
          int grp = k / g.kg;
          double d = rounded(dy[((long long)(n * g.p + p) * g.q + q) * g.k + k], P);
          for (int r = 0; r < g.r; ++r)
            for (int t = 0; t < g.s; ++t) {
              int hh = p * g.stride - g.pad_top + r, ww = q * g.stride - g.pad_left + t;
              if (hh < 0 || hh >= g.h || ww < 0 || ww >= g.w) continue;
              for (int ch = 0; ch < g.cg; ++ch)
                want[((long long)(n * g.h + hh) * g.w + ww) * g.c + grp * g.cg + ch] +=
                    d * double(rounded(w[((long long)k * g.r + r) * g.s * g.cg + t * g.cg + ch], P));
            }
        }
  double worst = 0;
  for (size_t i = 0; i < dx.size(); ++i) tally(worst, want[i], dx[i]);
  return report("dgrad", P, g, VEC, worst);
}

template <int P, bool VEC>
static bool wgrad(const ConvShape& g, int offset, int chunk_rows) {
  Case c = make(g, g.n * 3 + g.c * 17 + g.k + P);
  const float *x = c.x.data() + offset, *dy = c.dy.data() + offset;
  const long long dw_floats = (long long)g.k * g.rscg;
  const int chunks = static_cast<int>(ceil_div(g.npq, chunk_rows));
  std::vector<float> parts(chunks * dw_floats, NAN), dw(dw_floats, NAN);
  dim3 grid(ceil_div(g.rscg, 128), ceil_div(g.kg, 64), chunks * g.groups);
  CCN_LAUNCH((conv_tc_wgrad_kernel1<P, VEC>), grid, kConvTcWgradThreads,
             ConvTcWgradTile<P>::SMEM_FLOATS * sizeof(float), nullptr)(x, dy, parts.data(), g, chunk_rows, dw_floats);
  CCN_LAUNCH(conv_sum_partials_kernel1, 3, 64, 0, nullptr)(parts.data(), dw.data(), chunks, dw_floats);
  double worst = 0;
  for (int k = 0; k < g.k; ++k) {
    int grp = k / g.kg;
    for (int r = 0; r < g.r; ++r)
      for (int t = 0; t < g.s; ++t)
        for (int ch = 0; ch < g.cg; ++ch) {
          double s = 0;
          for (int n = 0; n < g.n; ++n)
            for (int p = 0; p < g.p; ++p)
              for (int q = 0; q < g.q; ++q)
                s += xat(g, x, n, p * g.stride - g.pad_top + r, q * g.stride - g.pad_left + t, grp * g.cg + ch, P) *
                     double(rounded(dy[((long long)(n * g.p + p) * g.q + q) * g.k + k], P));
          tally(worst, s, dw[((long long)k * g.r + r) * g.s * g.cg + t * g.cg + ch]);
        }
  }
  return report("wgrad", P, g, VEC, worst);
}

template <int P>
static bool all() {
  bool ok = true;
  // 16-byte copies: C/g and K/g multiples of 4; 2 M tiles, 2 filter tiles, a K tail.
  ConvShape a = make_conv_shape(2, 9, 11, 8, 68, 3, 3, 1, 1, 1, 1, 1, 1);
  // Grouped, stride 2, asymmetric padding, 16-byte copies.
  ConvShape b = make_conv_shape(2, 7, 8, 16, 24, 3, 3, 2, 1, 2, 0, 1, 2);
  // C = 3, odd sizes, stride 2, asymmetric padding: 4-byte copies.
  ConvShape c = make_conv_shape(1, 13, 10, 3, 7, 5, 3, 2, 2, 0, 1, 3, 1);
  ok &= fwd<P, true>(a, 0);
  ok &= fwd<P, true>(b, 0);
  ok &= fwd<P, false>(c, 0);
  ok &= fwd<P, false>(b, 1);  // misaligned: 4-byte copies of a C/g % 4 == 0 shape
  ok &= dgrad<P, true>(a, 0);
  ok &= dgrad<P, true>(b, 0);
  ok &= dgrad<P, false>(c, 0);
  ok &= wgrad<P, true>(a, 0, 64);  // 4 chunks of N*P*Q = 198
  ok &= wgrad<P, true>(b, 0, 16);
  ok &= wgrad<P, false>(c, 0, 48);
  ok &= dgrad<P, false>(b, 1);  // misaligned
  ok &= wgrad<P, false>(b, 1, 32);
  return ok;
}

int main() {
  bool ok = all<kGemmTcTF32>();
  ok &= all<kGemmTc3xTF32>();
  ok &= all<kGemmTcBF16>();
  return ok ? 0 : 1;
}
