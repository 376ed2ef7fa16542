// Tiled SGEMM: C[M,N] = alpha * op(A) op(B) + beta * C + bias, optional ReLU.
// The core of the fully connected layers (forward, dgrad, wgrad are the three
// transpositions; see cuda_convnet/backends/kernel_ops/linear.py).
//
// gemm_kernel1 (the general version): shared-memory tiling + register blocking, fp32.
//   Block: 256 threads as 16 x 16 (tx, ty); block tile BM x BN = 64 x 64, K step BK = 16.
//   Each thread owns a 4 x 4 register tile: rows ty + 16*i, cols tx + 16*j (i, j < 4), so
//   its reads of the B tile are consecutive across tx (conflict-free) and its reads of the
//   A tile are a broadcast, and the final stores are coalesced across tx.
//   Per K step: every thread loads 4 elements of A and 4 of B into shared memory (zero past
//   the matrix edge, so ragged M, N, K need no special case), __syncthreads, 16 rank-1
//   updates from shared memory, __syncthreads (before the next step overwrites the tiles).
//   Loads are coalesced along whichever dimension is contiguous in memory (TRANS_A/B).
//   Shared tiles are stored k-major with 4 floats of padding per row.
// gemm_kernel2: the same dataflow with 4x the work per thread, for large matrices.
//   Block tile 128 x 128, K step 8, 256 threads (16 x 16); each thread owns an 8 x 8
//   register tile made of four 4 x 4 quadrants: rows {ty*4 + i, 64 + ty*4 + i} and cols
//   {tx*4 + j, 64 + tx*4 + j}, so every shared-memory read is a float4 (an A read is a
//   broadcast across tx, B reads are consecutive float4s across tx: conflict-free) and
//   each K step does 64 FMAs per 4 float4 reads (kernel1: 16 FMAs per 8 scalar reads).
//   Global loads are one float4 per thread per operand when the contiguous dimension is
//   a multiple of 4 and the pointers are 16-byte aligned (`vec`), scalar otherwise; both
//   zero-fill past the matrix edge. The launcher picks kernel2 when M and N are >= 128.
// Preconditions: M, N, K >= 1; C does not alias A or B.
#pragma once

#include "common.h"
#include "tile.cuh"

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
  tile_zero(acc);

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
    tile_fma_strided<kGemmBK, kGemmBM + kGemmPad, kGemmBN + kGemmPad>(As, Bs, acc, tx, ty);
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

constexpr int kGemm2BM = 128, kGemm2BN = 128, kGemm2BK = 8;
constexpr int kGemm2SmemFloats = 2 * kGemm2BK * kGemm2BM;

// Loads 4 consecutive elements [col, col + 4) of row `row` of a row-major [rows, cols]
// matrix, zero past its edges; one 16-byte load when `vec` (cols % 4 == 0, aligned base).
__device__ __forceinline__ float4 gemm_load4(const float* __restrict__ p, int row, int col, int rows, int cols,
                                             bool vec) {
  float4 v = make_float4(0.f, 0.f, 0.f, 0.f);
  if (row >= rows) return v;
  const float* r = p + (long long)row * cols;
  if (vec && col + 3 < cols) return *reinterpret_cast<const float4*>(r + col);
  if (col < cols) v.x = r[col];
  if (col + 1 < cols) v.y = r[col + 1];
  if (col + 2 < cols) v.z = r[col + 2];
  if (col + 3 < cols) v.w = r[col + 3];
  return v;
}

template <bool TRANS_A, bool TRANS_B>
__global__ void __launch_bounds__(kGemmThreads)
    gemm_kernel2(const float* __restrict__ A, const float* __restrict__ B, float* __restrict__ C,
                 const float* __restrict__ bias, int M, int N, int K, float alpha, float beta, bool relu,
                 bool vec_a, bool vec_b, bool vec_c) {
  CCN_DYNAMIC_SHARED(float, smem);
  float* As = smem;                        // [BK][BM], k-major
  float* Bs = smem + kGemm2BK * kGemm2BM;  // [BK][BN]
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int tid = ty * 16 + tx;
  const int m0 = blockIdx.y * kGemm2BM, n0 = blockIdx.x * kGemm2BN;

  float acc[8][8];
  tile_zero(acc);

  for (int k0 = 0; k0 < K; k0 += kGemm2BK) {
    // A tile (128 x 8) and B tile (8 x 128): one float4 of each per thread.
    if (TRANS_A) {  // A stored [K,M]: 8 rows of 128 -> a float4 along m
      int kk = tid / 32, mm = (tid % 32) * 4;
      float4 a = gemm_load4(A, k0 + kk, m0 + mm, K, M, vec_a);
      *reinterpret_cast<float4*>(&As[kk * kGemm2BM + mm]) = a;
    } else {  // A stored [M,K]: 128 rows of 8 -> a float4 along k, stored transposed
      int mm = tid / 2, kk = (tid % 2) * 4;
      float4 a = gemm_load4(A, m0 + mm, k0 + kk, M, K, vec_a);
      As[(kk + 0) * kGemm2BM + mm] = a.x;
      As[(kk + 1) * kGemm2BM + mm] = a.y;
      As[(kk + 2) * kGemm2BM + mm] = a.z;
      As[(kk + 3) * kGemm2BM + mm] = a.w;
    }
    if (TRANS_B) {  // B stored [N,K]: a float4 along k, stored transposed
      int nn = tid / 2, kk = (tid % 2) * 4;
      float4 b = gemm_load4(B, n0 + nn, k0 + kk, N, K, vec_b);
      Bs[(kk + 0) * kGemm2BN + nn] = b.x;
      Bs[(kk + 1) * kGemm2BN + nn] = b.y;
      Bs[(kk + 2) * kGemm2BN + nn] = b.z;
      Bs[(kk + 3) * kGemm2BN + nn] = b.w;
    } else {  // B stored [K,N]: a float4 along n
      int kk = tid / 32, nn = (tid % 32) * 4;
      float4 b = gemm_load4(B, k0 + kk, n0 + nn, K, N, vec_b);
      *reinterpret_cast<float4*>(&Bs[kk * kGemm2BN + nn]) = b;
    }
    __syncthreads();  // the tiles are complete before anyone reads them
    tile_fma_8x8<kGemm2BK, kGemm2BM, kGemm2BN>(As, Bs, acc, tx, ty);
    __syncthreads();  // everyone is done reading before the next step overwrites the tiles
  }

  // Epilogue: register (i, j) is row m0 + (i / 4) * 64 + ty * 4 + i % 4, col likewise.
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    int m = m0 + (i / 4) * 64 + ty * 4 + (i % 4);
    if (m >= M) continue;
#pragma unroll
    for (int jq = 0; jq < 2; ++jq) {
      int n = n0 + jq * 64 + tx * 4;
      if (n >= N) continue;
      float v[4];
      float* c = C + (long long)m * N + n;
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        if (n + j >= N) break;
        float r = alpha * acc[i][jq * 4 + j];
        if (beta != 0.f) r = fmaf(beta, c[j], r);
        if (bias) r += bias[n + j];
        if (relu) r = (r <= 0.f) ? 0.f : r;
        v[j] = r;
      }
      if (vec_c && n + 3 < N) {
        *reinterpret_cast<float4*>(c) = make_float4(v[0], v[1], v[2], v[3]);
      } else {
        for (int j = 0; j < 4 && n + j < N; ++j) c[j] = v[j];
      }
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
