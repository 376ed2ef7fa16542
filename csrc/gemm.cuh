// Tiled SGEMM: C[M,N] = alpha * op(A) op(B) + beta * C + bias, optional ReLU.
// The core of the fully connected layers (forward, dgrad, wgrad are the three
// transpositions; see linear in cuda_convnet/backends/kernels.py).
//
// gemm_kernel1 (the only version so far): shared-memory tiling + register blocking, fp32.
//   Block: 256 threads as 16 x 16 (tx, ty); block tile BM x BN = 64 x 64, K step BK = 16.
//   Each thread owns a 4 x 4 register tile: rows ty + 16*i, cols tx + 16*j (i, j < 4), so
//   its reads of the B tile are consecutive across tx (conflict-free) and its reads of the
//   A tile are a broadcast, and the final stores are coalesced across tx.
//   Per K step: every thread loads 4 elements of A and 4 of B into shared memory (zero past
//   the matrix edge, so ragged M, N, K need no special case), __syncthreads, 16 rank-1
//   updates from shared memory, __syncthreads (before the next step overwrites the tiles).
//   Loads are coalesced along whichever dimension is contiguous in memory (TRANS_A/B).
//   Shared tiles are stored k-major with 4 floats of padding per row.
// Preconditions: M, N, K >= 1; C does not alias A or B.
#pragma once

#include "common.h"

namespace ccn {

constexpr int kGemmBM = 64, kGemmBN = 64, kGemmBK = 16;
constexpr int kGemmThreads = 256;
constexpr int kGemmPad = 4;
constexpr int kGemmSmemFloats = kGemmBK * (kGemmBM + kGemmPad) + kGemmBK * (kGemmBN + kGemmPad);

template <bool TRANS_A, bool TRANS_B>
__global__ void __launch_bounds__(kGemmThreads)
    gemm_kernel1(const float* __restrict__ A, const float* __restrict__ B, float* __restrict__ C,
                 const float* __restrict__ bias, int M, int N, int K, float alpha, float beta, bool relu) {
  CCN_DYNAMIC_SHARED(float, smem);
  float* As = smem;                                // [BK][BM + pad]
  float* Bs = smem + kGemmBK * (kGemmBM + kGemmPad);  // [BK][BN + pad]
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int tid = ty * 16 + tx;
  const int m0 = blockIdx.y * kGemmBM, n0 = blockIdx.x * kGemmBN;

  float acc[4][4];
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j) acc[i][j] = 0.f;

  for (int k0 = 0; k0 < K; k0 += kGemmBK) {
    // Load the A tile (BM x BK) and the B tile (BK x BN): 4 elements each per thread.
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      int l = tid + e * kGemmThreads;
      int kk, mm;
      if (TRANS_A) { mm = l % kGemmBM; kk = l / kGemmBM; }   // A stored [K,M]
      else         { kk = l % kGemmBK; mm = l / kGemmBK; }   // A stored [M,K]
      int m = m0 + mm, k = k0 + kk;
      float a = 0.f;
      if (m < M && k < K) a = TRANS_A ? A[(long long)k * M + m] : A[(long long)m * K + k];
      As[kk * (kGemmBM + kGemmPad) + mm] = a;

      int nn;
      if (TRANS_B) { kk = l % kGemmBK; nn = l / kGemmBK; }   // B stored [N,K]
      else         { nn = l % kGemmBN; kk = l / kGemmBN; }   // B stored [K,N]
      int n = n0 + nn;
      k = k0 + kk;
      float b = 0.f;
      if (n < N && k < K) b = TRANS_B ? B[(long long)n * K + k] : B[(long long)k * N + n];
      Bs[kk * (kGemmBN + kGemmPad) + nn] = b;
    }
    __syncthreads();  // the tiles are complete before anyone reads them
#pragma unroll
    for (int kk = 0; kk < kGemmBK; ++kk) {
      float a[4], b[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) a[i] = As[kk * (kGemmBM + kGemmPad) + ty + 16 * i];
#pragma unroll
      for (int j = 0; j < 4; ++j) b[j] = Bs[kk * (kGemmBN + kGemmPad) + tx + 16 * j];
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
    }
    __syncthreads();  // everyone is done reading before the next step overwrites the tiles
  }

  // Epilogue: scale, accumulate into C if beta != 0, add bias, ReLU.
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    int m = m0 + ty + 16 * i;
    if (m >= M) continue;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      int n = n0 + tx + 16 * j;
      if (n >= N) continue;
      float v = alpha * acc[i][j];
      float* c = C + (long long)m * N + n;
      if (beta != 0.f) v = fmaf(beta, *c, v);
      if (bias) v += bias[n];
      if (relu) v = (v <= 0.f) ? 0.f : v;
      *c = v;
    }
  }
}

// Column sums of a [rows, cols] matrix: one thread per column, rows summed in order, so the
// result does not depend on the launch configuration (no atomics). Adjacent threads read
// adjacent columns (coalesced).
__global__ void bias_grad_kernel1(const float* __restrict__ dy, float* __restrict__ db, long long rows, int cols) {
  int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= cols) return;
  float s = 0.f;
  for (long long r = 0; r < rows; ++r) s += dy[r * cols + c];
  db[c] = s;
}

}  // namespace ccn
