// Launchers for gemm.cuh (see ops.h for the contract).
#include <algorithm>
#include <string>

#include "gemm.cuh"
#include "gemm.h"

namespace ccn {

int gemm_version(int M, int N, int version) {
  CCN_REQUIRE(version >= 0 && version <= 2, "version must be 0 (the launcher picks), 1 or 2");
  if (version != 0) return version;
  return M >= kGemm2BM && N >= kGemm2BN ? 2 : 1;
}

namespace {

// Resident blocks per SM of each kernel on sm_80/sm_90 (registers: bench/sass_report.py,
// csrc/RESOURCES.md): one wave is sm_count times this many blocks.
constexpr long long kGemm1BlocksPerSm = 4, kGemm2BlocksPerSm = 2;
// Automatic slices: at most ceil(K / kGemmMinChunkK) of them (short slices cost their
// prologue and a slab of partial sums each), and at most kGemmMaxSplits (the workspace is
// splits x M x N).
constexpr long long kGemmMinChunkK = 64, kGemmMaxSplits = 64;

long long div_up(long long a, long long b) { return (a + b - 1) / b; }

}  // namespace

GemmPlan gemm_plan(int M, int N, int K, int version, int splits, int sm_count) {
  CCN_REQUIRE(splits >= 0, "splits must be >= 0 (0: automatic), not " + std::to_string(splits));
  CCN_REQUIRE(M >= 1 && N >= 1 && K >= 1, "M, N, K must be >= 1");
  GemmPlan p{};
  p.version = gemm_version(M, N, version);
  const bool v2 = p.version == 2;
  // Chunks are whole K steps of both kernels (16 is a multiple of kGemm2BK).
  constexpr long long step = kGemmBK;
  long long chunk = K;
  if (splits > 1) {
    chunk = div_up(div_up(K, splits), step) * step;
  } else if (splits == 0) {
    long long tiles = div_up(M, v2 ? kGemm2BM : kGemmBM) * div_up(N, v2 ? kGemm2BN : kGemmBN);
    long long wave = (long long)std::max(sm_count, 1) * (v2 ? kGemm2BlocksPerSm : kGemm1BlocksPerSm);
    long long want = std::min(div_up(wave, tiles), kGemmMaxSplits);
    if (want > 1) {
      // Rounded down, so that there are at least `want` slices (the grid fills the wave) ...
      chunk = std::max(K / want / step * step, kGemmMinChunkK);
      // ... then as even as whole K steps allow for that count (never more slices).
      chunk = div_up(div_up(K, div_up(K, chunk)), step) * step;
    }
  }
  chunk = std::min<long long>(chunk, K);
  p.k_chunk = static_cast<int>(chunk);
  p.splits = static_cast<int>(div_up(K, chunk));
  // splits x M x N can pass 2^63 for a forced split of extreme extents: refused, not wrapped.
  p.workspace_floats = p.splits > 1 ? checked_floats(p.splits, (long long)M * N, "gemm_plan: split-K workspace") : 0;
  return p;
}

void gemm(const float* A, const float* B, float* C, const float* bias, int M, int N, int K, bool trans_a,
          bool trans_b, float alpha, float beta, bool relu, cudaStream_t stream, int version, float* workspace,
          long long workspace_floats, int splits) {
  CCN_REQUIRE(M >= 1 && N >= 1 && K >= 1, "M, N, K must be >= 1");
  CCN_REQUIRE_EXTENT(M, "M");
  CCN_REQUIRE_EXTENT(N, "N");
  CCN_REQUIRE_EXTENT(K, "K");  // the K loop steps 16 past K before it stops
  CCN_REQUIRE(A && B && C, "null matrix pointer");
  // Without a workspace the automatic plan cannot split.
  const int sm_count = splits == 0 && !workspace ? 0 : device_sm_count();
  const GemmPlan plan = gemm_plan(M, N, K, version, splits == 0 && !workspace ? 1 : splits, sm_count);
  const long long a_floats = (long long)M * K, b_floats = (long long)K * N, c_floats = (long long)M * N;
  CCN_REQUIRE_DISJOINT(C, c_floats, A, a_floats);
  CCN_REQUIRE_DISJOINT(C, c_floats, B, b_floats);
  CCN_REQUIRE_DISJOINT(C, c_floats, bias, N);
  const bool split = plan.splits > 1;
  if (split) {
    CCN_REQUIRE(workspace, "null workspace (a split-K plan needs " + std::to_string(plan.workspace_floats) +
                               " floats: gemm_plan)");
    CCN_REQUIRE(workspace_floats >= plan.workspace_floats,
                "workspace too small: " + std::to_string(workspace_floats) + " floats given, " +
                    std::to_string(plan.workspace_floats) + " needed (gemm_plan)");
    CCN_REQUIRE(plan.splits <= 65535, "too many K slices for the grid's z dimension");
    // The slices the kernels write, then the sum kernel reads while it writes C.
    const long long ws = plan.workspace_floats;
    CCN_REQUIRE_DISJOINT(workspace, ws, A, a_floats);
    CCN_REQUIRE_DISJOINT(workspace, ws, B, b_floats);
    CCN_REQUIRE_DISJOINT(workspace, ws, C, c_floats);
    CCN_REQUIRE_DISJOINT(workspace, ws, bias, N);
  }
  // A split writes raw slices (no epilogue); the reduction applies alpha, beta, bias, ReLU.
  float* out = split ? workspace : C;
  const float ka = split ? 1.f : alpha, kb = split ? 0.f : beta;
  const float* kbias = split ? nullptr : bias;
  const bool krelu = split ? false : relu;
  if (plan.version == 2) {
    // Large matrices (the FC layers at batch 128): the 8 x 8-per-thread pipelined kernel.
    bool vec_a = aligned16(A) && (trans_a ? M : K) % 4 == 0;
    bool vec_b = aligned16(B) && (trans_b ? K : N) % 4 == 0;
    bool vec_c = aligned16(out) && N % 4 == 0;
    using Kernel2 = void (*)(const float*, const float*, float*, const float*, int, int, int, float, float, bool, bool,
                             bool, bool, int);
    Kernel2 k = trans_a ? (trans_b ? gemm_kernel2<true, true> : gemm_kernel2<true, false>)
                        : (trans_b ? gemm_kernel2<false, true> : gemm_kernel2<false, false>);
    CCN_REQUIRE(ceil_div(M, kGemm2BM) <= 65535u, "M too large for the grid's y dimension");
    dim3 grid(ceil_div(N, kGemm2BN), ceil_div(M, kGemm2BM), plan.splits);
    CCN_LAUNCH(k, grid, dim3(16, 16), kGemm2SmemFloats * sizeof(float), stream)(
        A, B, out, kbias, M, N, K, ka, kb, krelu, vec_a, vec_b, vec_c, plan.k_chunk);
    CCN_CHECK_LAUNCH("gemm_kernel2");
  } else {
    CCN_REQUIRE(ceil_div(M, kGemmBM) <= 65535u, "M too large for the grid's y dimension");
    using Kernel = void (*)(const float*, const float*, float*, const float*, int, int, int, float, float, bool, int);
    Kernel k = trans_a ? (trans_b ? gemm_kernel1<true, true> : gemm_kernel1<true, false>)
                       : (trans_b ? gemm_kernel1<false, true> : gemm_kernel1<false, false>);
    dim3 grid(ceil_div(N, kGemmBN), ceil_div(M, kGemmBM), plan.splits);
    CCN_LAUNCH(k, grid, dim3(16, 16), kGemmSmemFloats * sizeof(float), stream)(A, B, out, kbias, M, N, K, ka, kb,
                                                                              krelu, plan.k_chunk);
    CCN_CHECK_LAUNCH("gemm_kernel1");
  }
  if (split) {
    const long long elements = (long long)M * N;
    CCN_LAUNCH(gemm_sum_splits_kernel1, grid_stride_blocks(elements, 256), 256, 0, stream)(
        workspace, C, bias, elements, N, plan.splits, alpha, beta, relu);
    CCN_CHECK_LAUNCH("gemm_sum_splits_kernel1");
  }
}

void bias_grad(const float* dy, float* db, long long rows, int cols, cudaStream_t stream) {
  CCN_REQUIRE(rows >= 1 && cols >= 1, "rows and cols must be >= 1");
  CCN_REQUIRE_EXTENT(cols, "cols");
  CCN_REQUIRE(dy && db, "null pointer");
  CCN_REQUIRE_DISJOINT(db, cols, dy, checked_floats(rows, cols, "bias_grad: dy"));
  CCN_LAUNCH(bias_grad_kernel1, ceil_div(cols, 128), 128, 0, stream)(dy, db, rows, cols);
  CCN_CHECK_LAUNCH("bias_grad_kernel1");
}

}  // namespace ccn
