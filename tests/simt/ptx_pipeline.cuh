// A 3-stage cp.async pipeline on tensor cores, the test of the cp.async model (csrc/ptx/
// cp_async.cuh): D[M,N] = A[M,K] B[K,N], operands rounded to TF32, float32 accumulate.
// 64 threads (two warps), block tile 32 x 8, K step 8; warp w computes rows 16w..16w+15.
// Stage s of shared memory holds A[32][8] and B[8][8]; each K step: wait for the oldest
// stage, one barrier (its data from every thread is visible, and every thread is done with
// the stage the next load overwrites), mma, issue the load kStages-1 steps ahead, commit.
// Grid (N / 8, M / 32). Preconditions: M % 32 == 0, N % 8 == 0, K % 4 == 0 (16-byte
// copies; the tail of the last K step is zero-filled by the copies' src-size). The tests
// delete each cp_async_wait_group and each __syncthreads of this file in turn and check
// that the result goes wrong.
#pragma once

#include "ptx.cuh"

namespace ptxtest {
using namespace ccn;

constexpr int kPipeStages = 3, kPipeBM = 32, kPipeBN = 8, kPipeBK = 8;
constexpr int kPipeSmemFloats = kPipeStages * (kPipeBM * kPipeBK + kPipeBK * kPipeBN);

__global__ void pipeline_tf32_gemm(const float* A, const float* B, float* D, int N, int K) {
  CCN_DYNAMIC_SHARED(float, smem);
  float* sA = smem;                                     // [stage][32][8]
  float* sB = smem + kPipeStages * kPipeBM * kPipeBK;  // [stage][8][8]
  int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, g = lane >> 2, t = lane & 3;
  int m0 = blockIdx.y * kPipeBM, n0 = blockIdx.x * kPipeBN;
  int ktiles = (K + kPipeBK - 1) / kPipeBK;
  auto load = [&](int stage, int kt) {
    int k0 = kt * kPipeBK, r = tid / 2, c = (tid % 2) * 4;  // A: 32 rows x two 16-byte chunks
    bool a_in = k0 + c < K;
    cp_async_16(sA + (stage * kPipeBM + r) * kPipeBK + c, a_in ? A + (m0 + r) * K + k0 + c : A, a_in ? 16 : 0);
    if (tid < 16) {  // B: 8 rows x two chunks
      bool b_in = k0 + r < K;
      cp_async_16(sB + (stage * kPipeBK + r) * kPipeBN + c, b_in ? B + (k0 + r) * N + n0 + c : B, b_in ? 16 : 0);
    }
  };
  for (int s = 0; s < kPipeStages - 1; ++s) {
    if (s < ktiles) load(s, s);
    cp_async_commit_group();  // empty groups keep the count of groups per step fixed
  }
  float acc[4] = {0.f, 0.f, 0.f, 0.f};
  for (int kt = 0; kt < ktiles; ++kt) {
    cp_async_wait_group<kPipeStages - 2>();
    __syncthreads();
    const float* a_s = sA + ((kt % kPipeStages) * kPipeBM + warp * 16) * kPipeBK;
    const float* b_s = sB + (kt % kPipeStages) * kPipeBK * kPipeBN;
    uint32_t a[4] = {cvt_rna_tf32(a_s[g * kPipeBK + t]), cvt_rna_tf32(a_s[(g + 8) * kPipeBK + t]),
                     cvt_rna_tf32(a_s[g * kPipeBK + t + 4]), cvt_rna_tf32(a_s[(g + 8) * kPipeBK + t + 4])};
    uint32_t b[2] = {cvt_rna_tf32(b_s[t * kPipeBN + g]), cvt_rna_tf32(b_s[(t + 4) * kPipeBN + g])};
    mma_m16n8k8_tf32(acc, a, b, acc);
    int next = kt + kPipeStages - 1;
    if (next < ktiles) load(next % kPipeStages, next);
    cp_async_commit_group();
  }
  for (int i = 0; i < 4; ++i) D[(m0 + warp * 16 + g + (i >> 1) * 8) * N + n0 + 2 * t + (i & 1)] = acc[i];
}

}  // namespace ptxtest
