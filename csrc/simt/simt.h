// SIMT emulator: runs unchanged CUDA kernel source on the CPU (ARCHITECTURE.md §5).
//
// Included (instead of cuda_runtime.h) when csrc/ is compiled by g++ for the `_emu`
// extension. It supplies what kernel code uses: the CUDA keywords, threadIdx/blockIdx/
// blockDim/gridDim, CUDA's own vector types (the toolkit's vector_types.h when present),
// static and dynamic shared memory, __syncthreads, warp shuffles/ballot/vote with lockstep
// semantics, atomics and the fast-math intrinsics, and the one launch macro; and the two
// hooks behind the models of csrc/ptx/ (mma.sync, ldmatrix, cp.async): warp collectives
// that combine the whole warp's operands at once, and per-thread cp.async queues.
//
// Execution model (simt.cpp has the details):
//   - a grid's blocks are spread over OS threads; each block runs on one OS thread;
//   - a block's CUDA threads start as a plain loop (one call of the kernel per thread, in
//     the selected order) and turn into cooperative fibers at the first barrier, so
//     barrier-free kernels pay (almost) nothing;
//   - between barriers the threads run in the order chosen by CCN_SIMT_ORDER:
//     "forward" (default), "reverse", or "shuffle[:SEED]" (a fresh seeded permutation at
//     every barrier phase), so a missing __syncthreads shows up as a wrong answer;
//   - dynamic shared memory is poisoned with NaN before every block, and allocated with
//     its exact size so an ASan build (CCN_SANITIZE) reports out-of-bounds indices;
//   - a barrier that not every thread reaches (or one thread waits at __syncthreads while
//     its warp-mates wait at a shuffle) raises ccn::simt::Error instead of hanging.
// What it cannot model: bank conflicts, occupancy, true concurrency inside a block, the
// weak memory model, wgmma/TMA. Those are checked on a real GPU.
#pragma once

#if defined(__CUDACC__)
#error "simt.h is the g++ emulator of CUDA; nvcc builds include cuda_runtime.h instead"
#endif

#include <algorithm>
#include <cmath>
#include <math.h>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>

// ---- CUDA keywords. Defined before vector_types.h so the toolkit's host_defines.h keeps
// ours (it only defines each one if it is not defined yet).
#define __global__  // a kernel is a plain function here; the launch runs it per thread
#define __device__
#define __host__
#define __forceinline__ inline __attribute__((always_inline))
#define __launch_bounds__(...)
#define __restrict__ __restrict
#define __constant__ static
// A block's CUDA threads are fibers on one OS thread, so a thread_local static is exactly
// "one copy per block, shared by its threads". Blocks that run later on the same OS thread
// reuse it, as later blocks on an SM reuse shared memory (contents undefined).
#define __shared__ static thread_local

#if !defined(CCN_SIMT_NO_TOOLKIT) && __has_include(<vector_types.h>)
#include <vector_types.h>  // CUDA's own float4, int4, uint3, dim3, ...
#else
// Fallback for machines without the CUDA toolkit: the few vector types the kernels use.
struct alignas(8) float2 { float x, y; };
struct alignas(16) float4 { float x, y, z, w; };
struct alignas(16) int4 { int x, y, z, w; };
struct alignas(16) uint4 { unsigned x, y, z, w; };
struct alignas(8) uint2 { unsigned x, y; };
struct uint3 { unsigned x, y, z; };
struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned vx = 1, unsigned vy = 1, unsigned vz = 1) : x(vx), y(vy), z(vz) {}
  constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}
  constexpr operator uint3() const { return uint3{x, y, z}; }
};
#endif

// ---- vector_functions.h's constructors (device code uses them; they are not in vector_types.h).
inline float2 make_float2(float x, float y) { float2 v; v.x = x; v.y = y; return v; }
inline float4 make_float4(float x, float y, float z, float w) { float4 v; v.x = x; v.y = y; v.z = z; v.w = w; return v; }
inline int4 make_int4(int x, int y, int z, int w) { int4 v; v.x = x; v.y = y; v.z = z; v.w = w; return v; }
inline uint2 make_uint2(unsigned x, unsigned y) { uint2 v; v.x = x; v.y = y; return v; }
inline uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w) { uint4 v; v.x = x; v.y = y; v.z = z; v.w = w; return v; }
inline uint3 make_uint3(unsigned x, unsigned y, unsigned z) { uint3 v; v.x = x; v.y = y; v.z = z; return v; }

// ---- Runtime API types used by launchers and bindings.
typedef struct CUstream_st* cudaStream_t;

namespace ccn {
namespace simt {

// The multiprocessor count the emulator reports (cudaDevAttrMultiProcessorCount on a GPU):
// an H100 SXM's, so a launcher that sizes its grid from the SM count (gemm's split-K) takes
// in CI the path it takes on that card.
constexpr int kMultiprocessorCount = 132;

// Raised for emulation errors: divergent barriers, deadlocks, bad launch configurations.
struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Per-fiber / per-block index state. The scheduler rewrites these before it resumes a
// fiber; all are read through functions defined in simt.cpp (opaque to the optimiser), and
// every barrier is an opaque call too, so the compiler never caches a stale threadIdx.
extern thread_local uint3 tl_threadIdx;
extern thread_local uint3 tl_blockIdx;
extern thread_local dim3 tl_blockDim;
extern thread_local dim3 tl_gridDim;

void syncthreads(const char* file, int line);
// Warp collective: every lane of `mask` deposits `value`; after all of them arrived, each
// lane gets the 32 deposited values (lanes outside the mask read as their own value).
void warp_exchange(unsigned mask, unsigned long long value, unsigned long long out[32],
                   const char* file, int line);
// Warp collective with a combining step, for instructions that act on the whole warp at
// once (mma.sync, ldmatrix: csrc/ptx/). Every lane of `mask` deposits a pointer to its
// inputs and one to its outputs; when the last lane arrives the scheduler calls
// combine(in, out, mask) once, with no thread of the block running, so the operation is
// atomic for the warp as the hardware instruction is (in[l]/out[l]: lane l's pointers,
// null for lanes outside the mask). Lanes wait at the same collective only if they give
// the same `combine` and the same call site (file, line): a lane elsewhere, or exited, is
// a divergent warp collective and raises Error (reported when nothing else can run).
using WarpCombine = void (*)(const void* const in[32], void* const out[32], unsigned mask);
void warp_collective(unsigned mask, const void* in, void* out, WarpCombine combine, const char* name,
                     const char* file, int line);
// cp.async model (csrc/ptx/cp_async.cuh): per CUDA thread, a queue of copies in groups.
// cp_async writes NaN over the destination at once (its contents are undefined until
// the copy completes) and records the copy; cp_async_wait(n) performs every copy of all
// but the newest n committed groups, reading the source then. `src_bytes` < `bytes`
// zero-fills the rest (src_bytes == 0 reads nothing).
void cp_async(void* dst, const void* src, unsigned bytes, unsigned src_bytes, const char* file, int line);
void cp_async_commit();
void cp_async_wait(int n);
unsigned active_mask();
unsigned lane_id();
void* dynamic_shared();
void threadfence();

// The launch: runs `body(arg)` for every thread of every block.
using KernelBody = void (*)(void*);
void launch(dim3 grid, dim3 block, std::size_t dynamic_smem_bytes, KernelBody body, void* arg);

template <typename Kernel>
struct Launch {
  Kernel kernel;
  dim3 grid, block;
  std::size_t smem;
  template <typename... Args>
  void operator()(Args... args) const {
    // Kernel parameters are passed by value, as on the GPU; the lambda holds the copies.
    auto call = [&]() { kernel(args...); };
    using Call = decltype(call);
    launch(grid, block, smem, [](void* p) { (*static_cast<Call*>(p))(); }, &call);
  }
};
template <typename Kernel>
Launch<Kernel> make_launch(Kernel kernel, dim3 grid, dim3 block, std::size_t smem, cudaStream_t) {
  return Launch<Kernel>{kernel, grid, block, smem};
}

template <typename T>
inline T shfl_cast_back(unsigned long long bits) {
  T v;
  std::memcpy(&v, &bits, sizeof(T));
  return v;
}
template <typename T>
inline unsigned long long shfl_bits(T v) {
  static_assert(sizeof(T) <= 8, "warp shuffle of a type wider than 8 bytes");
  unsigned long long bits = 0;
  std::memcpy(&bits, &v, sizeof(T));
  return bits;
}
template <typename T>
inline T shfl_from(unsigned mask, T var, int (*src_of)(int, int, int), int arg, int width,
                   const char* file, int line) {
  unsigned long long all[32];
  warp_exchange(mask, shfl_bits(var), all, file, line);
  int lane = static_cast<int>(lane_id());
  int src = src_of(lane, arg, width);
  return shfl_cast_back<T>(all[src & 31]);
}
// Source-lane rules of the four shuffles (CUDA programming guide, "Warp Shuffle Functions"):
// lanes are grouped in segments of `width`; a source outside the segment keeps own value.
inline int shfl_idx_src(int lane, int src, int width) {
  return (lane & ~(width - 1)) + (src & (width - 1));
}
inline int shfl_up_src(int lane, int delta, int width) {
  return ((lane & (width - 1)) - delta < 0) ? lane : lane - delta;
}
inline int shfl_down_src(int lane, int delta, int width) {
  return ((lane & (width - 1)) + delta >= width) ? lane : lane + delta;
}
inline int shfl_xor_src(int lane, int m, int width) {
  int src = lane ^ m;
  return ((src & ~(width - 1)) != (lane & ~(width - 1))) ? lane : src;
}

}  // namespace simt
}  // namespace ccn

#define threadIdx (::ccn::simt::tl_threadIdx)
#define blockIdx (::ccn::simt::tl_blockIdx)
#define blockDim (::ccn::simt::tl_blockDim)
#define gridDim (::ccn::simt::tl_gridDim)
static constexpr int warpSize = 32;

#define __syncthreads() ::ccn::simt::syncthreads(__FILE__, __LINE__)
#define __syncwarp(...) ::ccn::simt::syncwarp_impl(__FILE__, __LINE__, ##__VA_ARGS__)
#define __shfl_sync(mask, var, src, ...) \
  ::ccn::simt::shfl_from((mask), (var), ::ccn::simt::shfl_idx_src, (src), ::ccn::simt::width_or_32(__VA_ARGS__), __FILE__, __LINE__)
#define __shfl_up_sync(mask, var, delta, ...) \
  ::ccn::simt::shfl_from((mask), (var), ::ccn::simt::shfl_up_src, (delta), ::ccn::simt::width_or_32(__VA_ARGS__), __FILE__, __LINE__)
#define __shfl_down_sync(mask, var, delta, ...) \
  ::ccn::simt::shfl_from((mask), (var), ::ccn::simt::shfl_down_src, (delta), ::ccn::simt::width_or_32(__VA_ARGS__), __FILE__, __LINE__)
#define __shfl_xor_sync(mask, var, lanemask, ...) \
  ::ccn::simt::shfl_from((mask), (var), ::ccn::simt::shfl_xor_src, (lanemask), ::ccn::simt::width_or_32(__VA_ARGS__), __FILE__, __LINE__)
#define __ballot_sync(mask, pred) ::ccn::simt::ballot((mask), (pred), __FILE__, __LINE__)
#define __any_sync(mask, pred) (::ccn::simt::ballot((mask), (pred), __FILE__, __LINE__) != 0u)
#define __all_sync(mask, pred) \
  (::ccn::simt::ballot((mask), (pred), __FILE__, __LINE__) == ((mask) & ::ccn::simt::active_mask()))
#define __activemask() ::ccn::simt::active_mask()

namespace ccn {
namespace simt {
inline int width_or_32() { return 32; }
inline int width_or_32(int w) { return w; }
inline void syncwarp_impl(const char* file, int line, unsigned mask = 0xffffffffu) {
  unsigned long long all[32];
  warp_exchange(mask, 0, all, file, line);
}
inline unsigned ballot(unsigned mask, bool pred, const char* file, int line) {
  unsigned long long all[32];
  warp_exchange(mask, pred ? 1u : 0u, all, file, line);
  unsigned bits = 0;
  unsigned live = mask & active_mask();
  for (int l = 0; l < 32; ++l)
    if (((live >> l) & 1u) && all[l]) bits |= 1u << l;
  return bits;
}
}  // namespace simt
}  // namespace ccn

// ---- The one launch macro and the one dynamic-shared-memory macro (csrc/common.h defines
// the nvcc versions). Usage: CCN_LAUNCH(kernel, grid, block, smem, stream)(args...).
#define CCN_LAUNCH(kernel, grid, block, smem, stream) \
  ::ccn::simt::make_launch((kernel), dim3(grid), dim3(block), (smem), (stream))
#define CCN_DYNAMIC_SHARED(type, name) type* name = static_cast<type*>(::ccn::simt::dynamic_shared())

// ---- Atomics. Blocks run on different OS threads, so these are real atomics.
template <typename T>
inline T atomicAdd(T* address, T val) {
  return __atomic_fetch_add(address, val, __ATOMIC_RELAXED);
}
template <typename F, typename U>
inline F atomic_float_op(F* address, F val, F (*op)(F, F)) {
  static_assert(sizeof(F) == sizeof(U), "");
  U* a = reinterpret_cast<U*>(address);
  U old = __atomic_load_n(a, __ATOMIC_RELAXED);
  for (;;) {
    F oldf, newf;
    std::memcpy(&oldf, &old, sizeof(F));
    newf = op(oldf, val);
    U newu;
    std::memcpy(&newu, &newf, sizeof(F));
    if (__atomic_compare_exchange_n(a, &old, newu, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) return oldf;
  }
}
inline float atomicAdd(float* address, float val) {
  return atomic_float_op<float, unsigned>(address, val, [](float a, float b) { return a + b; });
}
inline double atomicAdd(double* address, double val) {
  return atomic_float_op<double, unsigned long long>(address, val, [](double a, double b) { return a + b; });
}
template <typename T>
inline T atomicSub(T* address, T val) { return __atomic_fetch_sub(address, val, __ATOMIC_RELAXED); }
template <typename T>
inline T atomicExch(T* address, T val) { return __atomic_exchange_n(address, val, __ATOMIC_RELAXED); }
inline float atomicExch(float* address, float val) {
  unsigned v;
  std::memcpy(&v, &val, 4);
  v = __atomic_exchange_n(reinterpret_cast<unsigned*>(address), v, __ATOMIC_RELAXED);
  float r;
  std::memcpy(&r, &v, 4);
  return r;
}
template <typename T>
inline T atomicCAS(T* address, T compare, T val) {
  __atomic_compare_exchange_n(address, &compare, val, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
  return compare;  // holds the old value either way
}
template <typename T>
inline T atomicMax(T* address, T val) {
  T old = __atomic_load_n(address, __ATOMIC_RELAXED);
  while (old < val && !__atomic_compare_exchange_n(address, &old, val, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
  }
  return old;
}
template <typename T>
inline T atomicMin(T* address, T val) {
  T old = __atomic_load_n(address, __ATOMIC_RELAXED);
  while (old > val && !__atomic_compare_exchange_n(address, &old, val, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
  }
  return old;
}
inline void __threadfence() { ::ccn::simt::threadfence(); }
inline void __threadfence_block() { ::ccn::simt::threadfence(); }

// ---- Intrinsics and device math. The fast-math ones are computed exactly here; kernels
// compared against the reference use tolerances that cover the GPU's approximations.
inline float __expf(float x) { return std::exp(x); }
inline float __logf(float x) { return std::log(x); }
inline float __log2f(float x) { return std::log2(x); }
inline float __powf(float x, float y) { return std::pow(x, y); }
inline float __sinf(float x) { return std::sin(x); }
inline float __cosf(float x) { return std::cos(x); }
inline float __tanf(float x) { return std::tan(x); }
inline float __fdividef(float x, float y) { return x / y; }
inline float __frcp_rn(float x) { return 1.0f / x; }
inline float __fsqrt_rn(float x) { return std::sqrt(x); }
inline float __fmaf_rn(float a, float b, float c) { return std::fma(a, b, c); }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __saturatef(float x) { return x < 0.f ? 0.f : (x > 1.f ? 1.f : x); }
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline double rsqrt(double x) { return 1.0 / std::sqrt(x); }
inline float __int_as_float(int v) { float f; std::memcpy(&f, &v, 4); return f; }
inline int __float_as_int(float f) { int v; std::memcpy(&v, &f, 4); return v; }
inline float __uint_as_float(unsigned v) { float f; std::memcpy(&f, &v, 4); return f; }
inline unsigned __float_as_uint(float f) { unsigned v; std::memcpy(&v, &f, 4); return v; }
inline unsigned __umulhi(unsigned a, unsigned b) {
  return static_cast<unsigned>((static_cast<unsigned long long>(a) * b) >> 32);
}
inline unsigned long long __umul64hi(unsigned long long a, unsigned long long b) {
  return static_cast<unsigned long long>((static_cast<unsigned __int128>(a) * b) >> 64);
}
inline int __mul24(int a, int b) { return a * b; }
inline int __popc(unsigned v) { return __builtin_popcount(v); }
inline int __popcll(unsigned long long v) { return __builtin_popcountll(v); }
inline int __clz(int v) { return v == 0 ? 32 : __builtin_clz(static_cast<unsigned>(v)); }
inline int __ffs(int v) { return __builtin_ffs(v); }
inline unsigned __brev(unsigned v) {
  v = ((v >> 1) & 0x55555555u) | ((v & 0x55555555u) << 1);
  v = ((v >> 2) & 0x33333333u) | ((v & 0x33333333u) << 2);
  v = ((v >> 4) & 0x0F0F0F0Fu) | ((v & 0x0F0F0F0Fu) << 4);
  v = ((v >> 8) & 0x00FF00FFu) | ((v & 0x00FF00FFu) << 8);
  return (v >> 16) | (v << 16);
}
template <typename T>
inline T __ldg(const T* p) { return *p; }
// CUDA's device code has overloaded min/max for the arithmetic types.
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
inline unsigned max(unsigned a, unsigned b) { return a > b ? a : b; }
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline long long max(long long a, long long b) { return a > b ? a : b; }
inline float min(float a, float b) { return std::fmin(a, b); }
inline float max(float a, float b) { return std::fmax(a, b); }
inline double min(double a, double b) { return std::fmin(a, b); }
inline double max(double a, double b) { return std::fmax(a, b); }
// expf, fmaxf, sqrtf, ... : the C library's, from <math.h> (included above).
