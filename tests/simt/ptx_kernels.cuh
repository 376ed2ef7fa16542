// Test kernels of the PTX wrappers (csrc/ptx/): run by ptx_driver.cpp on the SIMT emulator
// (tests/test_ptx.py) and compiled by nvcc for sm_80/sm_90 (ptx_nvcc_check.cu). The tests
// also mutate this text (a swapped lane mapping, a dropped .trans, a lane that skips the
// mma) and check that every mutant fails. Each kernel runs on one warp.
#pragma once

#include "ptx.cuh"

namespace ptxtest {
using namespace ccn;

// mma on fragments given per lane (lane l's registers at [l * 4 + i] / [l * 2 + i]): the
// test places the matrix elements by the ISA tables itself, an independent check of the
// model's tables.
__global__ void mma_tf32_frag(const uint32_t* a, const uint32_t* b, const float* c, float* d) {
  int lane = threadIdx.x;
  uint32_t ra[4] = {a[lane * 4], a[lane * 4 + 1], a[lane * 4 + 2], a[lane * 4 + 3]};
  uint32_t rb[2] = {b[lane * 2], b[lane * 2 + 1]};
  float rc[4] = {c[lane * 4], c[lane * 4 + 1], c[lane * 4 + 2], c[lane * 4 + 3]}, rd[4];
  mma_m16n8k8_tf32(rd, ra, rb, rc);
  for (int i = 0; i < 4; ++i) d[lane * 4 + i] = rd[i];
}

__global__ void mma_bf16_frag(const uint32_t* a, const uint32_t* b, const float* c, float* d) {
  int lane = threadIdx.x;
  uint32_t ra[4] = {a[lane * 4], a[lane * 4 + 1], a[lane * 4 + 2], a[lane * 4 + 3]};
  uint32_t rb[2] = {b[lane * 2], b[lane * 2 + 1]};
  float rc[4] = {c[lane * 4], c[lane * 4 + 1], c[lane * 4 + 2], c[lane * 4 + 3]}, rd[4];
  mma_m16n8k16_bf16(rd, ra, rb, rc);
  for (int i = 0; i < 4; ++i) d[lane * 4 + i] = rd[i];
}

// D = A B + C for row-major float32 A (16x8), B (8x8, k x n), C and D (16x8): operands
// rounded by cvt.rna.tf32 and loaded straight from global memory by the fragment tables.
__global__ void mma_tf32_tile(const float* A, const float* B, const float* C, float* D) {
  int lane = threadIdx.x, g = lane >> 2, t = lane & 3;
  uint32_t a[4] = {cvt_rna_tf32(A[g * 8 + t]), cvt_rna_tf32(A[(g + 8) * 8 + t]), cvt_rna_tf32(A[g * 8 + t + 4]),
                   cvt_rna_tf32(A[(g + 8) * 8 + t + 4])};
  uint32_t b[2] = {cvt_rna_tf32(B[t * 8 + g]), cvt_rna_tf32(B[(t + 4) * 8 + g])};
  float c[4], d[4];
  for (int i = 0; i < 4; ++i) c[i] = C[(g + (i >> 1) * 8) * 8 + 2 * t + (i & 1)];
  mma_m16n8k8_tf32(d, a, b, c);
  for (int i = 0; i < 4; ++i) D[(g + (i >> 1) * 8) * 8 + 2 * t + (i & 1)] = d[i];
}

// D = A B + C for row-major float32 A (16x16), B (16x8, k x n), C, D (16x8), operands
// rounded to BF16 and packed in pairs by cvt.rn.bf16x2, loaded by the fragment tables.
__global__ void mma_bf16_tile(const float* A, const float* B, const float* C, float* D) {
  int lane = threadIdx.x, g = lane >> 2, t = lane & 3;
  uint32_t a[4], b[2];
  for (int r = 0; r < 4; ++r) {
    int row = g + (r & 1) * 8, col = 2 * t + (r >> 1) * 8;
    a[r] = cvt_rn_bf16x2(A[row * 16 + col], A[row * 16 + col + 1]);
  }
  for (int r = 0; r < 2; ++r) b[r] = cvt_rn_bf16x2(B[(2 * t + r * 8) * 8 + g], B[(2 * t + r * 8 + 1) * 8 + g]);
  float c[4], d[4];
  for (int i = 0; i < 4; ++i) c[i] = C[(g + (i >> 1) * 8) * 8 + 2 * t + (i & 1)];
  mma_m16n8k16_bf16(d, a, b, c);
  for (int i = 0; i < 4; ++i) D[(g + (i >> 1) * 8) * 8 + 2 * t + (i & 1)] = d[i];
}

// The same product with the operands staged in shared memory as BF16 and the fragments
// loaded by ldmatrix: A (row-major) by .x4, B (k-major rows of 8 n) by .x2.trans.
__global__ void mma_bf16_ldmatrix(const float* A, const float* B, const float* C, float* D) {
  alignas(16) __shared__ uint16_t sA[16][16];
  alignas(16) __shared__ uint16_t sB[16][8];
  int lane = threadIdx.x, g = lane >> 2, t = lane & 3;
  for (int i = lane; i < 16 * 16; i += 32) sA[i / 16][i % 16] = float_to_bf16_rn(A[i]);
  for (int i = lane; i < 16 * 8; i += 32) sB[i / 8][i % 8] = float_to_bf16_rn(B[i]);
  __syncthreads();
  // Lane l addresses row l % 8 of matrix l / 8; A's matrices: rows 0-7 / 8-15 (bit 0 of
  // the matrix index) x cols 0-7 / 8-15 (bit 1), the order of a[0..3]. B's: k 0-7, 8-15.
  uint32_t a[4], b[2];
  ldmatrix_x4(a, &sA[lane % 8 + ((lane / 8) & 1) * 8][(lane / 16) * 8]);
  ldmatrix_x2_trans(b, &sB[lane % 16][0]);
  float c[4], d[4];
  for (int i = 0; i < 4; ++i) c[i] = C[(g + (i >> 1) * 8) * 8 + 2 * t + (i & 1)];
  mma_m16n8k16_bf16(d, a, b, c);
  for (int i = 0; i < 4; ++i) D[(g + (i >> 1) * 8) * 8 + 2 * t + (i & 1)] = d[i];
}

// Every ldmatrix form on a 32x8 matrix of distinct 16-bit values; lane l gives row
// perm[l]. out[l * 14 + ...]: x1 (1), x2 (2), x4 (4), x1.trans (1), x2.trans (2), x4.trans (4).
__global__ void ldmatrix_all(const uint16_t* M, const int* perm, uint32_t* out) {
  alignas(16) __shared__ uint16_t s[32][8];
  int lane = threadIdx.x;
  for (int i = 0; i < 8; ++i) s[lane][i] = M[lane * 8 + i];
  __syncthreads();
  const uint16_t* row = &s[perm[lane]][0];
  uint32_t r[14];
  ldmatrix_x1(r, row);
  ldmatrix_x2(r + 1, row);
  ldmatrix_x4(r + 3, row);
  ldmatrix_x1_trans(r + 7, row);
  ldmatrix_x2_trans(r + 8, row);
  ldmatrix_x4_trans(r + 10, row);
  for (int i = 0; i < 14; ++i) out[lane * 14 + i] = r[i];
}

// Every conversion of x[i]; bf16x2[i] packs x[2i] (bits 0-15) and x[2i+1] (bits 16-31).
__global__ void cvt_all(const float* x, int n, uint32_t* tf32, uint16_t* bf16, uint32_t* bf16x2) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) {
    tf32[i] = cvt_rna_tf32(x[i]);
    bf16[i] = float_to_bf16_rn(x[i]);
  }
  if (2 * i + 1 < n) bf16x2[i] = cvt_rn_bf16x2(x[2 * i], x[2 * i + 1]);
}

// Every cp.async size with every src-size (zero-fill), 32 threads, 8 floats of dynamic
// shared memory each: [0, 4) by a 16-byte copy of (t % 5) * 4 source bytes (group 0),
// [4, 6) by an 8-byte copy of (t % 3) * 4 and [6] by a 4-byte copy of (t % 2) * 4 (group 1),
// [7] never written. Snapshots of the thread's slots: after issue (`before`), after
// wait_group<1> (`mid`: group 0 landed) and after wait_all (`after`). Reading a slot
// before its wait is undefined on a GPU; on the emulator it must read NaN.
__global__ void cp_async_forms(const float* src, float* before, float* mid, float* after) {
  CCN_DYNAMIC_SHARED(float, s);
  int t = threadIdx.x;
  cp_async_16(&s[t * 8], &src[t * 8], (t % 5) * 4);
  cp_async_commit_group();
  cp_async_8(&s[t * 8 + 4], &src[t * 8 + 4], (t % 3) * 4);
  cp_async_4(&s[t * 8 + 6], &src[t * 8 + 6], (t % 2) * 4);
  cp_async_commit_group();
  for (int i = 0; i < 8; ++i) before[t * 8 + i] = s[t * 8 + i];
  cp_async_wait_group<1>();
  for (int i = 0; i < 8; ++i) mid[t * 8 + i] = s[t * 8 + i];
  cp_async_wait_all();
  for (int i = 0; i < 8; ++i) after[t * 8 + i] = s[t * 8 + i];
}

}  // namespace ptxtest
