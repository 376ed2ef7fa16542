// Asynchronous global -> shared copies (PTX ISA, "Data Movement and Conversion
// Instructions: cp.async", "cp.async.commit_group", "cp.async.wait_group / wait_all"),
// the loads of a multi-stage software pipeline:
//
//   cp_async_16(smem, gmem[, src_bytes])  cp.async.cg.shared.global [smem], [gmem], 16, src_bytes
//   cp_async_8 (smem, gmem[, src_bytes])  cp.async.ca.shared.global [smem], [gmem], 8,  src_bytes
//   cp_async_4 (smem, gmem[, src_bytes])  cp.async.ca.shared.global [smem], [gmem], 4,  src_bytes
//   cp_async_commit_group()               cp.async.commit_group
//   cp_async_wait_group<N>()              cp.async.wait_group N
//   cp_async_wait_all()                   cp.async.wait_all (= commit_group; wait_group 0)
//
// Both addresses must be aligned to the copy size. src_bytes (default: the copy size)
// below the copy size reads only that many bytes and fills the rest of the destination
// with zeros; 0 reads nothing (the predicated-off load of a tile edge: gmem may then
// point anywhere). The 16-byte form bypasses L1 (.cg: the data are used once from shared
// memory); 8 and 4 bytes only exist as .ca. Copies are per thread: commit_group closes
// the thread's open copies into a group, wait_group N returns once at most the N newest
// of the thread's committed groups are still pending. Other threads see the data only
// after the issuing thread's wait *and* a barrier (__syncthreads) between them.
//
// Emulator model, faithful to the hazard:
//   - at issue the destination is overwritten with NaN (between issue and completion its
//     contents are undefined on the GPU), so a read of a stage before its wait, or by
//     another thread before the barrier that follows the wait, sees NaN — for dynamic and
//     static __shared__ buffers alike;
//   - the copy itself happens only when a wait_group/wait_all that covers its group
//     executes in the issuing thread; the source is read then, at the latest moment the
//     hardware may read it (sources are kernel inputs that do not change while it runs;
//     a kernel that did change them would see the latest value, which the GPU allows);
//   - copies never committed are not covered by wait_group N, as on the GPU;
//   - a bad size or a misaligned address raises ccn::simt::Error.
#pragma once

#include "site.cuh"

namespace ccn {

__device__ __forceinline__ void cp_async_16(void* smem, const void* gmem, unsigned src_bytes = 16 CCN_PTX_SITE) {
#if defined(__CUDA_ARCH__)
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(ptx_detail::smem_addr(smem)), "l"(gmem),
               "r"(src_bytes)
               : "memory");
#elif defined(CCN_EMU)
  ::ccn::simt::cp_async(smem, gmem, 16, src_bytes, ccn_file, ccn_line);
#endif
}

__device__ __forceinline__ void cp_async_8(void* smem, const void* gmem, unsigned src_bytes = 8 CCN_PTX_SITE) {
#if defined(__CUDA_ARCH__)
  asm volatile("cp.async.ca.shared.global [%0], [%1], 8, %2;\n" ::"r"(ptx_detail::smem_addr(smem)), "l"(gmem),
               "r"(src_bytes)
               : "memory");
#elif defined(CCN_EMU)
  ::ccn::simt::cp_async(smem, gmem, 8, src_bytes, ccn_file, ccn_line);
#endif
}

__device__ __forceinline__ void cp_async_4(void* smem, const void* gmem, unsigned src_bytes = 4 CCN_PTX_SITE) {
#if defined(__CUDA_ARCH__)
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(ptx_detail::smem_addr(smem)), "l"(gmem),
               "r"(src_bytes)
               : "memory");
#elif defined(CCN_EMU)
  ::ccn::simt::cp_async(smem, gmem, 4, src_bytes, ccn_file, ccn_line);
#endif
}

__device__ __forceinline__ void cp_async_commit_group() {
#if defined(__CUDA_ARCH__)
  asm volatile("cp.async.commit_group;\n" ::: "memory");
#elif defined(CCN_EMU)
  ::ccn::simt::cp_async_commit();
#endif
}

template <int N>
__device__ __forceinline__ void cp_async_wait_group() {
  static_assert(N >= 0 && N <= 7, "cp.async.wait_group takes an immediate 0..7");
#if defined(__CUDA_ARCH__)
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
#elif defined(CCN_EMU)
  ::ccn::simt::cp_async_wait(N);
#endif
}

__device__ __forceinline__ void cp_async_wait_all() {
#if defined(__CUDA_ARCH__)
  asm volatile("cp.async.wait_all;\n" ::: "memory");
#elif defined(CCN_EMU)
  ::ccn::simt::cp_async_commit();
  ::ccn::simt::cp_async_wait(0);
#endif
}

}  // namespace ccn
