// §4.1 training views, fused: random crop + horizontal flip + PCA lighting + mean
// subtraction, uint8 NHWC in, float32 NHWC out, one launch for the whole batch. The recipe
// (Philox counters and key, crop/flip from r0, Box-Muller in float64 from r1, the float32
// operation order, the mean subtracted at the source position) is the module docstring of
// cuda_convnet/reference/augment.py; this kernel reproduces that NumPy reference bit for bit
// (tests/test_kernels_augment.py), up to the documented libm exception (one float32 ulp of
// alpha, ~1e-8 per draw, when the GPU's double log/sin/cos and the CPU's land on opposite
// sides of a float32 rounding boundary).
//
//   in   images (n, h, w, 3) uint8, mean (h, w, 3) float32 or null
//   out  out (n, c, c, 3) float32, c = crop
//   out[i, y, x, ch] = ((float) images[i, sy, sx, ch] - mean[sy, sx, ch]) + delta_i[ch]
//        sy = crop_y_i + y,  sx = crop_x_i + (flip_i ? c - 1 - x : x)
//
// augment_train_views_kernel1<VEC>: grid (n, ceil(c / rows)), 256 threads; block (i, b)
// writes output rows y0 = b * rows .. y0 + rows - 1 of image i (rows from the launcher,
// ~5K output floats per block: 8 rows at c = 224, so 28 blocks per image), which are one
// contiguous span of out. Three steps, two barriers:
//   1. thread 0 draws r0 (one Philox call) and puts crop_y, crop_x, flip in shared memory.
//   2. every thread stages the block's source rows (c * 3 bytes each, starting at any byte
//      alignment) into shared memory as aligned 4-byte words: a word wholly inside the row
//      is one 32-bit load, the (at most two) edge words of a row are assembled from single
//      bytes, so nothing outside the row is read. Meanwhile thread 32 (warp 1, so warp 0's
//      loads are not held up) draws r1, runs Box-Muller in double and stores delta[3], so
//      that its latency can hide under the loads (design intent; not measured on a GPU).
//   3. every thread writes output elements, coalesced along the flattened (y, x * 3 + ch)
//      index of the span: with VEC (c % 4 == 0, so every row is a whole number of float4,
//      and out 16-byte aligned) one float4 store per 4 elements, else scalar stores. The
//      source byte comes from shared memory (the flip is only an index there), the mean
//      from global memory (read-only path; at 786 KB the mean image stays in L2 for the
//      whole batch).
// The arguments arrive as one __grid_constant__ struct (read in place from the parameter
// bank, even where a helper takes it by reference).
// Every block recomputes its image's numbers (two Philox calls, one log, sin, cos, sqrt
// pair in double): 28x redundant at c = 224, against ~5K output floats per block.
// Float32 arithmetic goes through __fmul_rn / __fadd_rn / __fsub_rn so nvcc never
// contracts it into FMAs (the reference rounds every operation); the double steps have no
// a * b + c shape to contract.
#pragma once

#include "common.h"
#include "philox.cuh"

namespace ccn {

constexpr unsigned kAugmentTag = 0x41554731u;  // "AUG1": augment.py's AUGMENT_TAG
constexpr int kAugmentThreads = 256;
constexpr int kAugmentLightingThread = 32;   // the first lane of warp 1
constexpr int kAugmentTargetFloats = 5376;   // output floats per block: 8 rows of 224 * 3
constexpr int kAugmentMaxCrop = 8192;        // one staged row (c * 3 bytes) fits shared memory

struct AugmentArgs {
  const unsigned char* images;  // (n, h, w, 3)
  const float* mean;            // (h, w, 3), or null: no subtraction
  float* out;                   // (n, crop, crop, 3)
  int n, h, w, crop;
  int rows;       // output rows per block
  int row_words;  // shared-memory words per staged row: ceil((3 * crop + 3) / 4)
  unsigned long long seed, offset;
  float sigma[3];  // per-component magnitudes (host: lighting_constants)
  float P[9];      // eigenvectors, row-major: P[ch * 3 + k] is component ch of p_k
  float lighting_std;
};

// The per-image numbers, at the start of the dynamic shared memory (the staged rows follow).
struct AugmentImage {
  int crop_y, crop_x, flip, pad_;
  float delta[3], pad2_;
};
static_assert(sizeof(AugmentImage) % 16 == 0, "staged rows start 16-byte aligned");

// Shared memory the launcher must provide for `rows` staged rows.
inline std::size_t augment_smem_bytes(int rows, int row_words) {
  return sizeof(AugmentImage) + static_cast<std::size_t>(rows) * row_words * 4;
}

__device__ __forceinline__ uint4 augment_philox(unsigned long long g, unsigned stream, unsigned long long seed) {
  uint4 ctr;
  ctr.x = static_cast<unsigned>(g);
  ctr.y = static_cast<unsigned>(g >> 32);
  ctr.z = stream;  // 0: geometry (r0), 1: lighting (r1)
  ctr.w = kAugmentTag;
  uint2 key;
  key.x = static_cast<unsigned>(seed);
  key.y = static_cast<unsigned>(seed >> 32);
  return philox4x32_10(ctr, key);
}

// u = ((word >> 8) + 0.5) * 2^-24, exact, in (0, 1).
__device__ __forceinline__ double augment_uniform(unsigned word) {
  return (static_cast<double>(word >> 8) + 0.5) * 5.9604644775390625e-08;
}

// Box-Muller in double, rounded once to float, then delta in the reference's float32 order.
__device__ __forceinline__ void augment_lighting(const AugmentArgs& a, uint4 r1, float delta[3]) {
  const double kTwoPi = 6.283185307179586;
  const double rad_a = sqrt(-2.0 * log(augment_uniform(r1.x)));
  const double th_a = kTwoPi * augment_uniform(r1.y);
  const double rad_b = sqrt(-2.0 * log(augment_uniform(r1.z)));
  const double th_b = kTwoPi * augment_uniform(r1.w);
  const float alpha[3] = {static_cast<float>(rad_a * cos(th_a)), static_cast<float>(rad_a * sin(th_a)),
                          static_cast<float>(rad_b * cos(th_b))};
  float s[3];
#pragma unroll
  for (int k = 0; k < 3; ++k) s[k] = __fmul_rn(__fmul_rn(alpha[k], a.lighting_std), a.sigma[k]);
#pragma unroll
  for (int ch = 0; ch < 3; ++ch)
    delta[ch] = __fadd_rn(__fadd_rn(__fmul_rn(a.P[ch * 3 + 0], s[0]), __fmul_rn(a.P[ch * 3 + 1], s[1])),
                          __fmul_rn(a.P[ch * 3 + 2], s[2]));
}

// First byte of source row sy's crop window in image i.
__device__ __forceinline__ const unsigned char* augment_row(const AugmentArgs& a, long long i, int sy, int crop_x) {
  return a.images + ((i * a.h + sy) * a.w + crop_x) * 3;
}

// One output element from its staged row (bytes of the row start at byte `shift` of `row`).
__device__ __forceinline__ float augment1(const AugmentArgs& a, const AugmentImage& im, const unsigned char* row,
                                          int shift, const float* mean_row, int x, int ch) {
  const int sx = im.flip ? a.crop - 1 - x : x;
  float v = static_cast<float>(row[shift + sx * 3 + ch]);
  if (mean_row) v = __fsub_rn(v, __ldg(mean_row + sx * 3 + ch));
  return __fadd_rn(v, im.delta[ch]);
}

template <bool VEC>
__global__ void __launch_bounds__(kAugmentThreads) augment_train_views_kernel1(const __grid_constant__ AugmentArgs a) {
  CCN_DYNAMIC_SHARED(unsigned, smem);
  AugmentImage& im = *reinterpret_cast<AugmentImage*>(smem);
  unsigned* staged = smem + sizeof(AugmentImage) / 4;
  const long long i = blockIdx.x;
  const unsigned long long g = a.offset + static_cast<unsigned long long>(i);  // mod 2^64
  const int c = a.crop, row_elems = 3 * c;
  const int y0 = blockIdx.y * a.rows;
  const int rows = min(a.rows, c - y0);

  // 1. geometry
  if (threadIdx.x == 0) {
    const uint4 r0 = augment_philox(g, 0u, a.seed);
    im.crop_y = static_cast<int>(r0.x % static_cast<unsigned>(a.h - c + 1));
    im.crop_x = static_cast<int>(r0.y % static_cast<unsigned>(a.w - c + 1));
    im.flip = static_cast<int>(r0.z >> 31);
  }
  __syncthreads();

  // 2. stage the source rows as aligned words; lighting on the side
  const int crop_y = im.crop_y + y0, crop_x = im.crop_x;
  for (int t = threadIdx.x; t < rows * a.row_words; t += blockDim.x) {
    const int r = t / a.row_words, k = t - r * a.row_words;
    const unsigned char* src = augment_row(a, i, crop_y + r, crop_x);
    const int shift = static_cast<int>(reinterpret_cast<std::uintptr_t>(src) & 3u);
    const unsigned char* word = src - shift + 4 * k;  // aligned
    const int lo = 4 * k - shift;                     // its first byte's index in the row
    if (lo >= row_elems) continue;                    // past the row: never read
    unsigned v;
    if (lo >= 0 && lo + 4 <= row_elems) {
      v = __ldg(reinterpret_cast<const unsigned*>(word));
    } else {  // an edge word: only the bytes inside the row
      v = 0;
      for (int j = 0; j < 4; ++j)
        if (lo + j >= 0 && lo + j < row_elems) v |= static_cast<unsigned>(__ldg(word + j)) << (8 * j);
    }
    staged[t] = v;
  }
  if (threadIdx.x == kAugmentLightingThread) {
    float delta[3];
    augment_lighting(a, augment_philox(g, 1u, a.seed), delta);
    im.delta[0] = delta[0];
    im.delta[1] = delta[1];
    im.delta[2] = delta[2];
  }
  __syncthreads();

  // 3. write the span of out: rows * 3c floats from (i, y0, 0, 0)
  float* out = a.out + (i * c + y0) * static_cast<long long>(row_elems);
  const unsigned char* staged_bytes = reinterpret_cast<const unsigned char*>(staged);
  const int span = rows * row_elems;
  if (VEC) {
    for (int q = threadIdx.x; q < span / 4; q += blockDim.x) {
      const int e = 4 * q, r = e / row_elems, rem = e - r * row_elems;  // row_elems % 4 == 0: one row
      const int shift = static_cast<int>(reinterpret_cast<std::uintptr_t>(augment_row(a, i, crop_y + r, crop_x)) & 3u);
      const float* mean_row = a.mean ? a.mean + (static_cast<long long>(crop_y + r) * a.w + crop_x) * 3 : nullptr;
      const unsigned char* row = staged_bytes + static_cast<std::size_t>(r) * a.row_words * 4;
      float v[4];
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const int x = (rem + j) / 3;
        v[j] = augment1(a, im, row, shift, mean_row, x, rem + j - 3 * x);
      }
      reinterpret_cast<float4*>(out)[q] = make_float4(v[0], v[1], v[2], v[3]);
    }
  } else {
    for (int e = threadIdx.x; e < span; e += blockDim.x) {
      const int r = e / row_elems, rem = e - r * row_elems, x = rem / 3;
      const int shift = static_cast<int>(reinterpret_cast<std::uintptr_t>(augment_row(a, i, crop_y + r, crop_x)) & 3u);
      const float* mean_row = a.mean ? a.mean + (static_cast<long long>(crop_y + r) * a.w + crop_x) * 3 : nullptr;
      out[e] = augment1(a, im, staged_bytes + static_cast<std::size_t>(r) * a.row_words * 4, shift, mean_row, x,
                        rem - 3 * x);
    }
  }
}

}  // namespace ccn
