// Runs csrc/gemm_tc.cuh's kernel (or a mutated copy found first on the include path) on
// ragged shapes, every operand layout and precision, against a double-precision loop over
// the operands rounded as the precision rounds them (3xtf32: unrounded), in whatever
// CCN_SIMT_ORDER is set. Prints "match" or "MISMATCH ..." per case; exit code 0 only if
// every case matches.
#include "gemm_tc.cuh"

#include "tc_rounding.h"

#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

using namespace ccn;

template <bool TA, bool TB, int P, int BM>
static bool run(int M, int N, int K, int offset) {
  std::mt19937 rng(M * 131 + N * 17 + K + int(P) * 7 + TA * 3 + TB);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  // `offset` floats in front of A and B: 1 makes them 4-byte but not 16-byte aligned.
  std::vector<float> Abuf(M * K + 4), Bbuf(K * N + 4), C(M * N, NAN), bias(N);
  for (auto& v : Abuf) v = u(rng);
  for (auto& v : Bbuf) v = u(rng);
  for (auto& v : bias) v = u(rng);
  const float *A = Abuf.data() + offset, *B = Bbuf.data() + offset;
  bool vec_a = aligned16(A) && (TA ? M : K) % 4 == 0, vec_b = aligned16(B) && (TB ? K : N) % 4 == 0;
  auto kernel = vec_a && vec_b ? gemm_tc_kernel1<BM, TA, TB, P, true> : gemm_tc_kernel1<BM, TA, TB, P, false>;
  CCN_LAUNCH(kernel, dim3(ceil_div(N, kGemmTcBN), ceil_div(M, BM)), kGemmTcThreads,
             gemm_tc_smem_floats(TA, TB, BM) * sizeof(float), nullptr)(A, B, C.data(), bias.data(), M, N, K, 1.f, 0.f,
                                                                      true);
  double worst = 0;
  for (int m = 0; m < M; ++m)
    for (int n = 0; n < N; ++n) {
      double s = bias[n];
      for (int k = 0; k < K; ++k)
        s += double(rounded(TA ? A[k * M + m] : A[m * K + k], P)) * double(rounded(TB ? B[n * K + k] : B[k * N + n], P));
      s = s > 0 ? s : 0;
      double err = std::fabs(s - C[m * N + n]);
      if (!(err <= 1e-4 * (1 + std::fabs(s)))) worst = std::isnan(err) ? INFINITY : std::max(worst, err);
    }
  const char* name = P == kGemmTcTF32 ? "tf32" : P == kGemmTc3xTF32 ? "3xtf32" : "bf16";
  std::printf("%s %s BM=%d M=%d N=%d K=%d ta=%d tb=%d vec=%d", worst > 0 ? "MISMATCH" : "match", name, BM, M, N, K,
              TA, TB, vec_a && vec_b);
  if (worst > 0) std::printf(" worst=%g", worst);
  std::printf("\n");
  return worst == 0;
}

int main() {
  bool ok = true;
  ok &= run<false, true, kGemmTcTF32, 64>(70, 75, 52, 0);     // forward layout, ragged M/N, 4 K steps
  ok &= run<false, false, kGemmTcTF32, 64>(33, 130, 40, 0);   // dgrad layout, K tail of 8; N % 4 != 0: 4-byte copies
  ok &= run<true, false, kGemmTcTF32, 64>(68, 72, 35, 0);     // wgrad layout, K tail of 3
  ok &= run<true, true, kGemmTcTF32, 16>(5, 66, 48, 0);       // small-M tile
  ok &= run<false, true, kGemmTc3xTF32, 64>(66, 70, 36, 0);
  ok &= run<true, false, kGemmTc3xTF32, 16>(12, 68, 33, 1);   // 4-byte copies (misaligned bases)
  ok &= run<false, true, kGemmTcBF16, 64>(65, 67, 50, 1);     // 4-byte copies, K tail of 2
  ok &= run<false, false, kGemmTcBF16, 16>(3, 72, 64, 0);
  ok &= run<true, false, kGemmTcBF16, 64>(64, 64, 17, 0);
  ok &= run<false, true, kGemmTcBF16, 16>(7, 70, 44, 0);      // forward layout, 128-bit fragment loads
  ok &= run<false, true, kGemmTc3xTF32, 16>(16, 64, 20, 0);
  return ok ? 0 : 1;
}
