// Warp-level tensor-core MMA (PTX ISA, "Warp Level Matrix Multiply-Accumulate
// Instructions: mma"), D = A * B + C for one warp, float32 accumulators:
//
//   mma_m16n8k8_tf32(d, a, b, c)   mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32
//                                  A 16x8, B 8x8, C/D 16x8; a[4], b[2]: .tf32 in .b32
//   mma_m16n8k16_bf16(d, a, b, c)  mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32
//                                  A 16x16, B 16x8, C/D 16x8; a[4], b[2]: two .bf16 each
//
// Every lane of the warp must execute the same mma (".sync.aligned"). d may alias c.
// Fragment layouts (ISA "Matrix Fragments for mma.m16n8k8" and "... for mma.m16n8k16 with
// floating point type"); g = groupID = lane >> 2, t = threadID_in_group = lane % 4;
// (row, col) of the element each register holds:
//
//   m16n8k8 .tf32      A (row-major 16x8)        B (8x8, k x n)      C, D (16x8)
//     reg 0            (g,     t)                (t,     g)           (g,     2t)
//     reg 1            (g + 8, t)                (t + 4, g)           (g,     2t + 1)
//     reg 2            (g,     t + 4)                                 (g + 8, 2t)
//     reg 3            (g + 8, t + 4)                                 (g + 8, 2t + 1)
//
//   m16n8k16 .bf16     A (16x16): low half, high half      B (16x8, k x n): low, high
//     reg 0            (g,     2t),     (g,     2t + 1)     (2t,     g), (2t + 1, g)
//     reg 1            (g + 8, 2t),     (g + 8, 2t + 1)     (2t + 8, g), (2t + 9, g)
//     reg 2            (g,     2t + 8), (g,     2t + 9)
//     reg 3            (g + 8, 2t + 8), (g + 8, 2t + 9)
//     C, D as for m16n8k8.
//
// Emulator model: a warp collective (ccn::simt::warp_collective). When all 32 lanes have
// arrived, it places every lane's registers by the tables above, computes each D element
// as C + sum_k A*B in float64 with k ascending, rounds once to float32, and scatters D.
// TF32 operands are read as the hardware reads them: only the upper 19 bits (sign,
// exponent, 10 mantissa bits), so a kernel that forgets cvt_rna_tf32 gets truncated
// operands, not float32 ones. Products of TF32 or BF16 values are exact in float64, and
// so is their sum unless the terms span more than ~2^30 in magnitude: the model is the
// exact result rounded once. The hardware adds with its own internal order and rounding,
// so a GPU may differ from the model by a few float32 ulps of the largest term; tests on
// a GPU compare at a tolerance, tests on the emulator exactly. A lane that exits or waits
// elsewhere is a divergent warp collective: ccn::simt::Error.
#pragma once

#include "site.cuh"

namespace ccn {

#if defined(CCN_EMU)
namespace ptx_detail {
struct MmaIn {
  uint32_t a[4];
  uint32_t b[2];
  float c[4];
};

// D[m][n] = C[m][n] + sum_k A[m][k] B[k][n] (float64, k ascending), scattered to lanes.
template <int K>
inline void mma_compute(const float (&A)[16][K], const float (&B)[K][8], const float (&C)[16][8],
                        void* const out[32]) {
  for (int lane = 0; lane < 32; ++lane) {
    int g = lane >> 2, t = lane & 3;
    float* d = static_cast<float*>(out[lane]);
    for (int i = 0; i < 4; ++i) {
      int m = g + (i >> 1) * 8, n = 2 * t + (i & 1);
      double acc = C[m][n];
      for (int k = 0; k < K; ++k) acc += static_cast<double>(A[m][k]) * static_cast<double>(B[k][n]);
      d[i] = static_cast<float>(acc);
    }
  }
}

inline void mma_gather_c(const void* const in[32], float (&C)[16][8]) {
  for (int lane = 0; lane < 32; ++lane) {
    const MmaIn& x = *static_cast<const MmaIn*>(in[lane]);
    int g = lane >> 2, t = lane & 3;
    for (int i = 0; i < 4; ++i) C[g + (i >> 1) * 8][2 * t + (i & 1)] = x.c[i];
  }
}

inline void mma_require_full_warp(unsigned mask, const char* what) {
  if (mask == 0xffffffffu) return;
  char m[160];
  std::snprintf(m, sizeof m, "simt: %s needs all 32 lanes of a warp (mask 0x%08x)", what, mask);
  throw ::ccn::simt::Error(m);
}

inline float tf32_operand(uint32_t bits) { return bits_float(bits & 0xffffe000u); }
inline float bf16_operand(uint32_t half) { return bits_float((half & 0xffffu) << 16); }

inline void mma_m16n8k8_tf32_combine(const void* const in[32], void* const out[32], unsigned mask) {
  mma_require_full_warp(mask, "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32");
  float A[16][8], B[8][8], C[16][8];
  for (int lane = 0; lane < 32; ++lane) {
    const MmaIn& x = *static_cast<const MmaIn*>(in[lane]);
    int g = lane >> 2, t = lane & 3;
    A[g][t] = tf32_operand(x.a[0]);
    A[g + 8][t] = tf32_operand(x.a[1]);
    A[g][t + 4] = tf32_operand(x.a[2]);
    A[g + 8][t + 4] = tf32_operand(x.a[3]);
    B[t][g] = tf32_operand(x.b[0]);
    B[t + 4][g] = tf32_operand(x.b[1]);
  }
  mma_gather_c(in, C);
  mma_compute<8>(A, B, C, out);
}

inline void mma_m16n8k16_bf16_combine(const void* const in[32], void* const out[32], unsigned mask) {
  mma_require_full_warp(mask, "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32");
  float A[16][16], B[16][8], C[16][8];
  for (int lane = 0; lane < 32; ++lane) {
    const MmaIn& x = *static_cast<const MmaIn*>(in[lane]);
    int g = lane >> 2, t = lane & 3;
    for (int r = 0; r < 4; ++r) {
      int row = g + (r & 1) * 8, col = 2 * t + (r >> 1) * 8;
      A[row][col] = bf16_operand(x.a[r]);
      A[row][col + 1] = bf16_operand(x.a[r] >> 16);
    }
    for (int r = 0; r < 2; ++r) {
      int k = 2 * t + r * 8;
      B[k][g] = bf16_operand(x.b[r]);
      B[k + 1][g] = bf16_operand(x.b[r] >> 16);
    }
  }
  mma_gather_c(in, C);
  mma_compute<16>(A, B, C, out);
}

// The model's side of both wrappers: every lane's registers into one warp collective at
// the caller's site, D scattered back.
__device__ __forceinline__ void mma_emulate(float d[4], const uint32_t a[4], const uint32_t b[2],
                                            const float c[4], ::ccn::simt::WarpCombine combine,
                                            const char* name, const char* ccn_file, int ccn_line) {
  MmaIn in{{a[0], a[1], a[2], a[3]}, {b[0], b[1]}, {c[0], c[1], c[2], c[3]}};
  float out[4];
  ::ccn::simt::warp_collective(0xffffffffu, &in, out, combine, name, ccn_file, ccn_line);
  for (int i = 0; i < 4; ++i) d[i] = out[i];
}
}  // namespace ptx_detail
#endif

__device__ __forceinline__ void mma_m16n8k8_tf32(float d[4], const uint32_t a[4], const uint32_t b[2],
                                                 const float c[4] CCN_PTX_SITE) {
#if defined(__CUDA_ARCH__)
  asm volatile(
      "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%10, %11, %12, %13};\n"
      : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]), "f"(c[2]),
        "f"(c[3]));
#elif defined(CCN_EMU)
  ptx_detail::mma_emulate(d, a, b, c, ptx_detail::mma_m16n8k8_tf32_combine, "mma.sync.m16n8k8.tf32", ccn_file, ccn_line);
#endif
}

__device__ __forceinline__ void mma_m16n8k16_bf16(float d[4], const uint32_t a[4], const uint32_t b[2],
                                                  const float c[4] CCN_PTX_SITE) {
#if defined(__CUDA_ARCH__)
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%10, %11, %12, %13};\n"
      : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]), "f"(c[2]),
        "f"(c[3]));
#elif defined(CCN_EMU)
  ptx_detail::mma_emulate(d, a, b, c, ptx_detail::mma_m16n8k16_bf16_combine, "mma.sync.m16n8k16.bf16", ccn_file, ccn_line);
#endif
}

}  // namespace ccn
