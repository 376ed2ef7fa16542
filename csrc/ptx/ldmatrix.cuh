// ldmatrix: a warp loads 8x8 matrices of 16-bit elements from shared memory into mma
// fragments (PTX ISA, "Data Movement and Conversion Instructions: ldmatrix"):
//
//   ldmatrix_x1(r, row)        ldmatrix.sync.aligned.m8n8.x1.shared.b16        r[1]
//   ldmatrix_x2(r, row)        ldmatrix.sync.aligned.m8n8.x2.shared.b16        r[2]
//   ldmatrix_x4(r, row)        ldmatrix.sync.aligned.m8n8.x4.shared.b16        r[4]
//   ldmatrix_x{1,2,4}_trans    the same with .trans
//
// `row` is this lane's shared-memory address of one matrix row: 8 consecutive 16-bit
// elements, 16-byte aligned. Lanes 8i..8i+7 give rows 0..7 of matrix i (x1 uses lanes
// 0-7, x2 lanes 0-15, x4 all; the other lanes' addresses are ignored). Register i of lane
// l receives matrix i's elements (row l/4, cols 2(l%4) and 2(l%4)+1), the first in bits
// 0-15; with .trans, the elements (row 2(l%4), col l/4) and (row 2(l%4)+1, col l/4), i.e.
// the same positions of the transposed matrix. That is exactly the A fragment (x4) and,
// for a k-major B, the B fragment (x2.trans) of mma.m16n8k16 (csrc/ptx/mma.cuh).
// Every lane of the warp must execute it (".sync.aligned").
//
// Emulator model: a warp collective; when all 32 lanes have arrived it reads the rows
// (all at once, as one instruction does) and hands each lane its registers. A row
// address that is not 16-byte aligned raises ccn::simt::Error.
#pragma once

#include "site.cuh"

namespace ccn {

#if defined(CCN_EMU)
namespace ptx_detail {
template <int NUM, bool TRANS>
inline void ldmatrix_combine(const void* const in[32], void* const out[32], unsigned mask) {
  if (mask != 0xffffffffu) {
    char m[128];
    std::snprintf(m, sizeof m, "simt: ldmatrix needs all 32 lanes of a warp (mask 0x%08x)", mask);
    throw ::ccn::simt::Error(m);
  }
  uint16_t M[NUM][8][8];
  for (int i = 0; i < NUM; ++i)
    for (int r = 0; r < 8; ++r) {
      const void* row = *static_cast<const void* const*>(in[8 * i + r]);
      if (reinterpret_cast<std::uintptr_t>(row) % 16 != 0) {
        char m[128];
        std::snprintf(m, sizeof m, "simt: ldmatrix row address %p of lane %d is not 16-byte aligned", row, 8 * i + r);
        throw ::ccn::simt::Error(m);
      }
      std::memcpy(M[i][r], row, 16);
    }
  for (int lane = 0; lane < 32; ++lane) {
    uint32_t* r = static_cast<uint32_t*>(out[lane]);
    int a = lane / 4, b = 2 * (lane % 4);
    for (int i = 0; i < NUM; ++i) {
      uint32_t lo = TRANS ? M[i][b][a] : M[i][a][b];
      uint32_t hi = TRANS ? M[i][b + 1][a] : M[i][a][b + 1];
      r[i] = lo | (hi << 16);
    }
  }
}

template <int NUM, bool TRANS>
inline void ldmatrix_model(uint32_t* r, const void* row, const char* name, const char* file, int line) {
  uint32_t out[NUM];
  ::ccn::simt::warp_collective(0xffffffffu, &row, out, ldmatrix_combine<NUM, TRANS>, name, file, line);
  for (int i = 0; i < NUM; ++i) r[i] = out[i];
}
}  // namespace ptx_detail
#endif

__device__ __forceinline__ void ldmatrix_x1(uint32_t r[1], const void* row CCN_PTX_SITE) {
#if defined(__CUDA_ARCH__)
  asm volatile("ldmatrix.sync.aligned.m8n8.x1.shared.b16 {%0}, [%1];\n"
               : "=r"(r[0])
               : "r"(ptx_detail::smem_addr(row))
               : "memory");
#elif defined(CCN_EMU)
  ptx_detail::ldmatrix_model<1, false>(r, row, "ldmatrix.x1", ccn_file, ccn_line);
#endif
}

__device__ __forceinline__ void ldmatrix_x2(uint32_t r[2], const void* row CCN_PTX_SITE) {
#if defined(__CUDA_ARCH__)
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0, %1}, [%2];\n"
               : "=r"(r[0]), "=r"(r[1])
               : "r"(ptx_detail::smem_addr(row))
               : "memory");
#elif defined(CCN_EMU)
  ptx_detail::ldmatrix_model<2, false>(r, row, "ldmatrix.x2", ccn_file, ccn_line);
#endif
}

__device__ __forceinline__ void ldmatrix_x4(uint32_t r[4], const void* row CCN_PTX_SITE) {
#if defined(__CUDA_ARCH__)
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(ptx_detail::smem_addr(row))
               : "memory");
#elif defined(CCN_EMU)
  ptx_detail::ldmatrix_model<4, false>(r, row, "ldmatrix.x4", ccn_file, ccn_line);
#endif
}

__device__ __forceinline__ void ldmatrix_x1_trans(uint32_t r[1], const void* row CCN_PTX_SITE) {
#if defined(__CUDA_ARCH__)
  asm volatile("ldmatrix.sync.aligned.m8n8.x1.trans.shared.b16 {%0}, [%1];\n"
               : "=r"(r[0])
               : "r"(ptx_detail::smem_addr(row))
               : "memory");
#elif defined(CCN_EMU)
  ptx_detail::ldmatrix_model<1, true>(r, row, "ldmatrix.x1.trans", ccn_file, ccn_line);
#endif
}

__device__ __forceinline__ void ldmatrix_x2_trans(uint32_t r[2], const void* row CCN_PTX_SITE) {
#if defined(__CUDA_ARCH__)
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0, %1}, [%2];\n"
               : "=r"(r[0]), "=r"(r[1])
               : "r"(ptx_detail::smem_addr(row))
               : "memory");
#elif defined(CCN_EMU)
  ptx_detail::ldmatrix_model<2, true>(r, row, "ldmatrix.x2.trans", ccn_file, ccn_line);
#endif
}

__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t r[4], const void* row CCN_PTX_SITE) {
#if defined(__CUDA_ARCH__)
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(ptx_detail::smem_addr(row))
               : "memory");
#elif defined(CCN_EMU)
  ptx_detail::ldmatrix_model<4, true>(r, row, "ldmatrix.x4.trans", ccn_file, ccn_line);
#endif
}

}  // namespace ccn
