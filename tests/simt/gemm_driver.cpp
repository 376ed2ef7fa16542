// Runs csrc/gemm.cuh's kernels (or a mutated copy found first on the include path) on ragged
// shapes against a double-precision loop, in whatever CCN_SIMT_ORDER is set. Prints
// "match" or "MISMATCH ..." per shape; exit code 0 only if every shape matches.
#include "gemm.cuh"

#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

using namespace ccn;

static bool run(int M, int N, int K, bool ta, bool tb, int version = 1) {
  std::mt19937 rng(M * 131 + N * 17 + K);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  std::vector<float> A(M * K), B(K * N), C(M * N, NAN);
  for (auto& v : A) v = u(rng);
  for (auto& v : B) v = u(rng);
  if (version == 1) {
    auto k = ta ? (tb ? gemm_kernel1<true, true> : gemm_kernel1<true, false>)
                : (tb ? gemm_kernel1<false, true> : gemm_kernel1<false, false>);
    CCN_LAUNCH(k, dim3(ceil_div(N, kGemmBN), ceil_div(M, kGemmBM)), dim3(16, 16), kGemmSmemFloats * sizeof(float),
               nullptr)(A.data(), B.data(), C.data(), nullptr, M, N, K, 1.f, 0.f, false);
  } else {
    auto k = ta ? (tb ? gemm_kernel2<true, true> : gemm_kernel2<true, false>)
                : (tb ? gemm_kernel2<false, true> : gemm_kernel2<false, false>);
    bool va = (ta ? M : K) % 4 == 0, vb = (tb ? K : N) % 4 == 0, vc = N % 4 == 0;
    CCN_LAUNCH(k, dim3(ceil_div(N, kGemm2BN), ceil_div(M, kGemm2BM)), dim3(16, 16), kGemm2SmemFloats * sizeof(float),
               nullptr)(A.data(), B.data(), C.data(), nullptr, M, N, K, 1.f, 0.f, false, va, vb, vc);
  }
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
    std::printf("MISMATCH v%d M=%d N=%d K=%d ta=%d tb=%d worst=%g\n", version, M, N, K, ta, tb, worst);
    return false;
  }
  std::printf("match v%d M=%d N=%d K=%d ta=%d tb=%d\n", version, M, N, K, ta, tb);
  return true;
}

int main() {
  bool ok = true;
  ok &= run(70, 75, 40, false, true);   // ragged in M and N, three K steps
  ok &= run(64, 64, 48, true, false);
  ok &= run(33, 130, 17, false, false);
  ok &= run(5, 9, 1, true, true);       // K = 1
  ok &= run(130, 136, 24, false, true, 2);  // kernel2: ragged M, vector loads of A and B
  ok &= run(129, 133, 21, true, false, 2);  // kernel2: scalar loads (21, 133 not multiples of 4)
  return ok ? 0 : 1;
}
