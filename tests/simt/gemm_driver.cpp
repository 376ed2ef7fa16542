// Runs csrc/gemm.cuh's kernels (or a mutated copy found first on the include path) on ragged
// shapes against a double-precision loop, in whatever CCN_SIMT_ORDER is set. Prints
// "match" or "MISMATCH ..." per shape; exit code 0 only if every shape matches.
#include "gemm.cuh"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

using namespace ccn;

// `splits` > 1 runs the split-K path as the launcher does: each slice into its own slab of
// a workspace, then gemm_sum_splits_kernel1.
static bool run(int M, int N, int K, bool ta, bool tb, int version = 1, int splits = 1) {
  std::mt19937 rng(M * 131 + N * 17 + K);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  std::vector<float> A(M * K), B(K * N), C(M * N, NAN);
  for (auto& v : A) v = u(rng);
  for (auto& v : B) v = u(rng);
  // The launcher's forced split (gemm.cu, gemm_plan): slices of whole 16-deep K steps.
  struct {
    int splits, k_chunk;
    std::size_t workspace_floats;
  } plan;
  plan.k_chunk = std::min(K, ((K + splits - 1) / splits + 15) / 16 * 16);
  plan.splits = (K + plan.k_chunk - 1) / plan.k_chunk;
  plan.workspace_floats = plan.splits > 1 ? std::size_t(plan.splits) * M * N : 0;
  std::vector<float> work(plan.workspace_floats, NAN);
  float* out = plan.splits > 1 ? work.data() : C.data();
  if (version == 1) {
    auto k = ta ? (tb ? gemm_kernel1<true, true> : gemm_kernel1<true, false>)
                : (tb ? gemm_kernel1<false, true> : gemm_kernel1<false, false>);
    CCN_LAUNCH(k, dim3(ceil_div(N, kGemmBN), ceil_div(M, kGemmBM), plan.splits), dim3(16, 16),
               kGemmSmemFloats * sizeof(float), nullptr)(A.data(), B.data(), out, nullptr, M, N, K, 1.f, 0.f, false,
                                                         plan.k_chunk);
  } else {
    auto k = ta ? (tb ? gemm_kernel2<true, true> : gemm_kernel2<true, false>)
                : (tb ? gemm_kernel2<false, true> : gemm_kernel2<false, false>);
    bool va = (ta ? M : K) % 4 == 0, vb = (tb ? K : N) % 4 == 0, vc = N % 4 == 0;
    CCN_LAUNCH(k, dim3(ceil_div(N, kGemm2BN), ceil_div(M, kGemm2BM), plan.splits), dim3(16, 16),
               kGemm2SmemFloats * sizeof(float), nullptr)(A.data(), B.data(), out, nullptr, M, N, K, 1.f, 0.f, false,
                                                          va, vb, vc, plan.k_chunk);
  }
  if (plan.splits > 1)
    CCN_LAUNCH(gemm_sum_splits_kernel1, 7, 64, 0, nullptr)(work.data(), C.data(), nullptr, (long long)M * N, N,
                                                           plan.splits, 1.f, 0.f, false);
  double worst = 0;
  for (int m = 0; m < M; ++m)
    for (int n = 0; n < N; ++n) {
      double s = 0;
      for (int kk = 0; kk < K; ++kk)
        s += double(ta ? A[kk * M + m] : A[m * K + kk]) * double(tb ? B[n * K + kk] : B[kk * N + n]);
      double err = std::fabs(s - C[m * N + n]);
      if (!(err <= 1e-4 * (1 + std::fabs(s)))) worst = std::isnan(err) ? INFINITY : std::max(worst, err);
    }
  if (worst > 0) {
    std::printf("MISMATCH v%d M=%d N=%d K=%d ta=%d tb=%d splits=%d worst=%g\n", version, M, N, K, ta, tb, plan.splits,
                worst);
    return false;
  }
  std::printf("match v%d M=%d N=%d K=%d ta=%d tb=%d splits=%d\n", version, M, N, K, ta, tb, plan.splits);
  return true;
}

int main() {
  bool ok = true;
  ok &= run(70, 75, 40, false, true);   // ragged in M and N, three K steps
  ok &= run(64, 64, 48, true, false);
  ok &= run(33, 130, 17, false, false);
  ok &= run(5, 9, 1, true, true);       // K = 1
  ok &= run(130, 136, 24, false, true, 2);  // kernel2: ragged M, 3 K steps through 3 stages
  ok &= run(129, 133, 21, true, false, 2);  // kernel2: scalar copies (21, 133 not multiples of 4)
  ok &= run(131, 140, 76, false, false, 2);  // kernel2: 10 K steps, the stages reused; K tail of 4
  ok &= run(128, 132, 44, true, true, 2);   // kernel2: the fourth layout, whole-row tile
  ok &= run(40, 70, 100, false, true, 1, 3);  // split-K on kernel1: slices of 48, 48, 4
  ok &= run(130, 129, 90, true, false, 2, 4);  // split-K on kernel2: slices of 32, 32, 26
  return ok ? 0 : 1;
}
