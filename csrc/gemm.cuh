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
// gemm_kernel2: 4x the work per thread, for large matrices.
//   Block tile 128 x 128, K step 8, 256 threads (16 x 16); each thread owns an 8 x 8
//   register tile made of four 4 x 4 quadrants: rows {ty*4 + i, 64 + ty*4 + i} and cols
//   {tx*4 + j, 64 + tx*4 + j}, so every shared-memory read is a float4 (an A read is a
//   broadcast across tx, B reads are consecutive float4s across tx: conflict-free) and
//   each K step does 64 FMAs per 4 float4 reads (kernel1: 16 FMAs per 8 scalar reads).
//   Loads: a 3-stage cp.async pipeline (ptx/cp_async.cuh), one float4 of each operand per
//   thread and stage: one 16-byte copy along M or N when that dimension is contiguous, a
//   multiple of 4 and 16-byte aligned (`vec`), else four 4-byte copies (always for the
//   k-contiguous layouts, which are stored transposed); edges zero-filled (src-size 0).
//   Each K step: wait for this thread's copies of tile kt, one barrier, the copies of tile
//   kt + 2 into the stage read in step kt - 1, the FMAs of tile kt. Shared rows padded to
//   132 floats (the transposed 4-byte stores of a warp then hit distinct banks). The
//   launcher picks kernel2 when M and N are >= 128.
// Split-K (both kernels): blockIdx.z = slice z sums k in [z k_chunk, (z + 1) k_chunk) into
//   its own [M, N] slab of C (a workspace); gemm_sum_splits_kernel1 then adds the slabs in
//   slice order and applies alpha, beta, bias, ReLU (gemm.cu, gemm_plan).
// Preconditions: M, N, K >= 1; C does not alias A or B.
#pragma once

#include "common.h"
#include "ptx/cp_async.cuh"
#include "tile.cuh"

namespace ccn {

constexpr int kGemmBM = 64, kGemmBN = 64, kGemmBK = 16;
constexpr int kGemmThreads = 256;
constexpr int kGemmPad = 4;
constexpr int kGemmSmemFloats = kGemmBK * (kGemmBM + kGemmPad) + kGemmBK * (kGemmBN + kGemmPad);

template <bool TRANS_A, bool TRANS_B>
__global__ void __launch_bounds__(kGemmThreads)
    gemm_kernel1(const float* __restrict__ A, const float* __restrict__ B, float* __restrict__ C,
                 const float* __restrict__ bias, int M, int N, int K, float alpha, float beta, bool relu,
                 int k_chunk) {
  CCN_DYNAMIC_SHARED(float, smem);
  float* As = smem;                                // [BK][BM + pad]
  float* Bs = smem + kGemmBK * (kGemmBM + kGemmPad);  // [BK][BN + pad]
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int tid = ty * 16 + tx;
  const int m0 = blockIdx.y * kGemmBM, n0 = blockIdx.x * kGemmBN;

  // Split-K: slice z sums k in [k_lo, k_hi) into its own [M, N] slab of C.
  const int k_lo = blockIdx.z * k_chunk;
  const int k_hi = k_chunk < K - k_lo ? k_lo + k_chunk : K;
  C += (long long)blockIdx.z * M * N;

  float acc[4][4];
  tile_zero(acc);

  for (int k0 = k_lo; k0 < k_hi; k0 += kGemmBK) {
    // Load the A tile (BM x BK) and the B tile (BK x BN): 4 elements each per thread.
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      int l = tid + e * kGemmThreads;
      int kk, mm;
      if (TRANS_A) { mm = l % kGemmBM; kk = l / kGemmBM; }   // A stored [K,M]
      else         { kk = l % kGemmBK; mm = l / kGemmBK; }   // A stored [M,K]
      int m = m0 + mm, k = k0 + kk;
      float a = 0.f;
      if (m < M && k < k_hi) a = TRANS_A ? A[(long long)k * M + m] : A[(long long)m * K + k];
      As[kk * (kGemmBM + kGemmPad) + mm] = a;

      int nn;
      if (TRANS_B) { kk = l % kGemmBK; nn = l / kGemmBK; }   // B stored [N,K]
      else         { nn = l % kGemmBN; kk = l / kGemmBN; }   // B stored [K,N]
      int n = n0 + nn;
      k = k0 + kk;
      float b = 0.f;
      if (n < N && k < k_hi) b = TRANS_B ? B[(long long)n * K + k] : B[(long long)k * N + n];
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

constexpr int kGemm2BM = 128, kGemm2BN = 128, kGemm2BK = 8, kGemm2Stages = 3;
constexpr int kGemm2Ld = kGemm2BM + kGemmPad;  // row stride of both k-major tiles (kGemm2BM == kGemm2BN)
constexpr int kGemm2Stage = kGemm2BK * kGemm2Ld;  // floats of one operand's tile in one stage
constexpr int kGemm2SmemFloats = kGemm2Stages * 2 * kGemm2Stage;

// Copies 4 consecutive elements [col, col + 4) of row `row` of a row-major matrix with row
// stride `ld` into shared memory, zero where row >= rows or col + e >= col_end. Along
// (`dst_step` 1; `vec`: one 16-byte copy, which needs ld % 4 == 0 and a 16-byte aligned
// base, so that a quad is all in or all out) or transposed (`dst_step` = the tile's row
// stride: four 4-byte copies). Out-of-range elements read nothing (src-size 0).
__device__ __forceinline__ void gemm_copy4(float* dst, int dst_step, const float* __restrict__ p, int row, int col,
                                           int rows, int col_end, long long ld, bool vec) {
  const float* src = p + (long long)row * ld + col;
  if (vec && dst_step == 1) {
    bool in = row < rows && col < col_end;
    cp_async_16(dst, in ? src : p, in ? 16 : 0);
    return;
  }
#pragma unroll
  for (int e = 0; e < 4; ++e) {
    bool in = row < rows && col + e < col_end;
    cp_async_4(dst + e * dst_step, in ? src + e : p, in ? 4 : 0);
  }
}

template <bool TRANS_A, bool TRANS_B>
__global__ void __launch_bounds__(kGemmThreads)
    gemm_kernel2(const float* __restrict__ A, const float* __restrict__ B, float* __restrict__ C,
                 const float* __restrict__ bias, int M, int N, int K, float alpha, float beta, bool relu,
                 bool vec_a, bool vec_b, bool vec_c, int k_chunk) {
  constexpr int BK = kGemm2BK, LD = kGemm2Ld, S = kGemm2Stages;
  CCN_DYNAMIC_SHARED(float, smem);
  float* As = smem;                        // [S][BK][LD], k-major
  float* Bs = smem + S * kGemm2Stage;      // [S][BK][LD]
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int tid = ty * 16 + tx;
  const int m0 = blockIdx.y * kGemm2BM, n0 = blockIdx.x * kGemm2BN;
  // Split-K: slice z sums k in [k_lo, k_hi) into its own [M, N] slab of C.
  const int k_lo = blockIdx.z * k_chunk;
  const int k_hi = k_chunk < K - k_lo ? k_lo + k_chunk : K;
  const int ktiles = (k_hi - k_lo + BK - 1) / BK;
  C += (long long)blockIdx.z * M * N;

  // One float4 of each operand per thread and stage; the k-contiguous layouts are stored
  // transposed (k-major) by four 4-byte copies.
  auto load = [&](int stage, int kt) {
    const int k0 = k_lo + kt * BK;
    float* as = As + stage * kGemm2Stage;
    float* bs = Bs + stage * kGemm2Stage;
    if (TRANS_A) {  // A stored [K,M]: 8 rows of 128 -> a float4 along m
      int kk = tid / 32, mm = (tid % 32) * 4;
      gemm_copy4(as + kk * LD + mm, 1, A, k0 + kk, m0 + mm, k_hi, M, M, vec_a);
    } else {  // A stored [M,K]: 128 rows of 8 -> four k, stored transposed
      int mm = tid / 2, kk = (tid % 2) * 4;
      gemm_copy4(as + kk * LD + mm, LD, A, m0 + mm, k0 + kk, M, k_hi, K, false);
    }
    if (TRANS_B) {  // B stored [N,K]: four k, stored transposed
      int nn = tid / 2, kk = (tid % 2) * 4;
      gemm_copy4(bs + kk * LD + nn, LD, B, n0 + nn, k0 + kk, N, k_hi, K, false);
    } else {  // B stored [K,N]: a float4 along n
      int kk = tid / 32, nn = (tid % 32) * 4;
      gemm_copy4(bs + kk * LD + nn, 1, B, k0 + kk, n0 + nn, k_hi, N, N, vec_b);
    }
  };

  for (int s = 0; s < S - 1; ++s) {
    if (s < ktiles) load(s, s);
    cp_async_commit_group();  // empty past the last tile: the group count per step stays fixed
  }

  float acc[8][8];
  tile_zero(acc);

  int read_stage = 0, write_stage = S - 1;  // counters, not kt % S: no division in the loop
  for (int kt = 0; kt < ktiles; ++kt) {
    cp_async_wait_group<S - 2>();  // this thread's copies of tile kt have landed
    __syncthreads();  // every thread's copies of tile kt are visible, and the stage read in step kt - 1 is free
    if (kt + S - 1 < ktiles) load(write_stage, kt + S - 1);
    cp_async_commit_group();
    tile_fma_8x8<BK, LD, LD>(As + read_stage * kGemm2Stage, Bs + read_stage * kGemm2Stage, acc, tx, ty);
    read_stage = read_stage == S - 1 ? 0 : read_stage + 1;
    write_stage = write_stage == S - 1 ? 0 : write_stage + 1;
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

// The split-K reduction: C[i] = alpha * (sum over z = 0, 1, ..., splits - 1 of parts[z][i])
// + beta * C[i] + bias[i % N], then ReLU if asked; parts is [splits][M * N]. One thread
// per element (grid-stride), slices summed in ascending order: deterministic, no atomics.
__global__ void gemm_sum_splits_kernel1(const float* __restrict__ parts, float* __restrict__ C,
                                        const float* __restrict__ bias, long long elements, int N, int splits,
                                        float alpha, float beta, bool relu) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < elements;
       i += (long long)gridDim.x * blockDim.x) {
    float s = parts[i];
    for (int z = 1; z < splits; ++z) s += parts[z * elements + i];
    float v = alpha * s;
    if (beta != 0.f) v = fmaf(beta, C[i], v);
    if (bias) v += bias[i % N];
    if (relu) v = (v <= 0.f) ? 0.f : v;
    C[i] = v;
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
