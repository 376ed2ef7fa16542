// Launchers of the convolution kernels: conv_fwd.cuh (forward), conv_dgrad.cuh (gradient
// with respect to the input), conv_wgrad.cuh (gradient with respect to the filters, and the
// bias gradient). Contract in ops.h; the math is cuda_convnet/reference/conv.py.
//
// Layouts (ARCHITECTURE.md §3): x, dx (N, H, W, C); w, dw (K, R, S, C/groups); y, dy (N, P, Q, K);
// b, db (K,). Cross-correlation (no filter flip). Padding is (top, bottom, left, right);
// output size by the floor rule of cuda_convnet/shapes.py:
//   P = (H + top + bottom - R) / stride + 1,  Q = (W + left + right - S) / stride + 1.
// Every size is allowed (C = 3, odd H and W, N = 1, any stride >= 1): the kernels zero-fill
// outside the image and past every ragged tile edge. Limits (refused by make_conv_shape and
// the launchers, and by cuda_convnet/checks.py for every backend): padded sizes <=
// kMaxExtent; N*P*Q, N*H*W, R*S*C/groups, R*S*K/groups < 2^31 - 64; K/groups (and, for
// dgrad, C/groups) <= 65535 * 64; groups <= 65535; dgrad groups * stride^2 <= 65535.
#pragma once

#include "common.h"

namespace ccn {

// The geometry of one convolution, checked and with its derived sizes filled in. Passed
// by value to the kernels (plain ints, so host and device code read it the same way).
struct ConvShape {
  int n, h, w, c;                                // input, NHWC
  int k, r, s;                                   // filters, KRSC with c / groups channels
  int stride;
  int pad_top, pad_bottom, pad_left, pad_right;
  int groups;
  int p, q;                                      // output rows and cols
  // Derived: per-group channel counts and the GEMM extents of ARCHITECTURE.md §4.
  int cg, kg;                                    // c / groups, k / groups
  int rs, rscg;                                  // r * s, r * s * cg (the forward's Kgemm)
  int pq;                                        // p * q
  long long npq, nhw;                            // n * p * q (forward M, wgrad Kgemm), n * h * w
};

// Checks every size (all >= 1 except the paddings >= 0; c and k divisible by groups; the
// filter fits the padded input; the GEMM extents fit the kernels' 32-bit row indices) and
// fills p, q and the derived fields. Throws std::invalid_argument (-> ValueError). Inline
// (not in a .cu) so the emulator's test drivers can build a shape without the launchers.
inline ConvShape make_conv_shape(int n, int h, int w, int c, int k, int r, int s, int stride, int pad_top,
                                 int pad_bottom, int pad_left, int pad_right, int groups) {
  CCN_REQUIRE(n >= 1 && h >= 1 && w >= 1 && c >= 1, "x sizes (N, H, W, C) must be >= 1");
  CCN_REQUIRE(k >= 1 && r >= 1 && s >= 1, "filter sizes (K, R, S) must be >= 1");
  CCN_REQUIRE(stride >= 1 && groups >= 1, "stride and groups must be >= 1");
  CCN_REQUIRE(pad_top >= 0 && pad_bottom >= 0 && pad_left >= 0 && pad_right >= 0, "padding must be >= 0");
  CCN_REQUIRE(c % groups == 0 && k % groups == 0, "C and K must be divisible by groups");
  const long long hp = (long long)h + pad_top + pad_bottom, wp = (long long)w + pad_left + pad_right;
  CCN_REQUIRE(r <= hp && s <= wp, "the filter is larger than the padded input");
  // Input coordinates p*stride + r - pad stay in [-pad, hp) and the off-image origin
  // kConvOffImage + r stays negative: both need hp, wp <= kMaxExtent.
  CCN_REQUIRE_EXTENT(hp, "h + pad_top + pad_bottom");
  CCN_REQUIRE_EXTENT(wp, "w + pad_left + pad_right");
  ConvShape g{};
  g.n = n; g.h = h; g.w = w; g.c = c; g.k = k; g.r = r; g.s = s; g.stride = stride;
  g.pad_top = pad_top; g.pad_bottom = pad_bottom; g.pad_left = pad_left; g.pad_right = pad_right;
  g.groups = groups;
  g.p = static_cast<int>((hp - r) / stride + 1);  // floor rule (shapes.py)
  g.q = static_cast<int>((wp - s) / stride + 1);
  g.cg = c / groups;
  g.kg = k / groups;
  g.rs = r * s;
  const long long rscg = (long long)r * s * g.cg, rskg = (long long)r * s * g.kg;
  const long long pq = (long long)g.p * g.q;
  g.npq = n * pq;
  g.nhw = (long long)n * h * w;
  const long long lim = (1LL << 31) - 64;  // row indices and tile origins stay in int
  CCN_REQUIRE(rscg < lim && rskg < lim && g.npq < lim && g.nhw < lim,
              "convolution too large for 32-bit GEMM indices (N*P*Q, N*H*W, R*S*C/groups, R*S*K/groups)");
  g.pq = static_cast<int>(pq);
  g.rscg = static_cast<int>(rscg);
  return g;
}

// The launchers' check of a ConvShape they are handed (a struct the caller could fill by
// hand): throws std::invalid_argument unless it has make_conv_shape's invariants.
inline void conv_require_shape(const ConvShape& g) {
  CCN_REQUIRE(g.n >= 1 && g.p >= 1 && g.q >= 1 && g.groups >= 1 && g.cg * g.groups == g.c &&
                  g.kg * g.groups == g.k && g.rscg == (long long)g.r * g.s * g.cg && g.npq == (long long)g.n * g.pq,
              "shape not made by make_conv_shape");
}

// Floats in each array of a shape (x/dx, w/dw, y/dy), for the launchers' overlap checks.
// Products of extents make_conv_shape bounded: N*H*W and N*P*Q < 2^31, C and K < 2^31.
inline long long conv_x_floats(const ConvShape& g) { return g.nhw * g.c; }
inline long long conv_w_floats(const ConvShape& g) { return (long long)g.k * g.rscg; }
inline long long conv_y_floats(const ConvShape& g) { return g.npq * g.k; }

// y = conv(x, w) + b, then ReLU if `relu`. b may be null. y must not alias x, w or b
// (std::invalid_argument where any byte is shared).
// version: 0 lets the launcher pick (conv_fwd_kernel2 where conv_fwd_kernel2_applies, else
// conv_fwd_kernel3 where conv_fwd_kernel3_applies, else conv_fwd_kernel1); 1, 2 or 3 forces
// conv_fwd_kernel<version> (2 and 3 throw where they do not apply; 1, the 64 x 64 general
// kernel, runs any shape; any other value throws). All three give bit-identical results.
void conv2d(const float* x, const float* w, const float* b, float* y, const ConvShape& g, bool relu,
            cudaStream_t stream, int version = 0);
// Which conv_fwd_kernel<n> conv2d(..., version) runs for these pointers and this shape;
// throws std::invalid_argument exactly where conv2d would refuse `version`.
int conv2d_version(const float* x, const float* w, const ConvShape& g, int version = 0);
// The fast path's preconditions: C/groups % 4 == 0, x and w 16-byte aligned.
bool conv_fwd_kernel2_applies(const float* x, const float* w, const ConvShape& g);
// conv_fwd_kernel3's: ((R-1)*W + S)*C <= 2^31 - 1 (its tap table holds 32-bit offsets (r*W + s)*C + c).
bool conv_fwd_kernel3_applies(const ConvShape& g);

// dx = gradient of conv with respect to x, given dy. Overwrites dx (every element).
// version: 0 lets the launcher pick (conv2d_dgrad_version); 1 or 2 forces
// conv_dgrad_kernel<version> (2 throws where conv_dgrad_kernel2_applies is false; any other
// value throws). Both give bit-identical results.
void conv2d_dgrad(const float* dy, const float* w, float* dx, const ConvShape& g, cudaStream_t stream,
                  int version = 0);
// Which conv_dgrad_kernel<n> conv2d_dgrad(..., version) runs for these pointers and this
// shape: 2 where kernel2 applies and C/groups > 16 (kernel1's 256 x 16 tile pads conv1's
// C = 3 less), else 1; throws std::invalid_argument exactly where conv2d_dgrad would refuse
// `version`. dx may be null: an output not yet allocated, taken as 16-byte aligned.
int conv2d_dgrad_version(const float* dy, const float* w, const float* dx, const ConvShape& g, int version = 0);
// conv_dgrad_kernel2's preconditions: K/groups % 4 == 0, C/groups % 4 == 0, dy, w, dx
// 16-byte aligned (dx null: see conv2d_dgrad_version), its offsets in range (conv_dgrad2.cuh).
bool conv_dgrad_kernel2_applies(const float* dy, const float* w, const float* dx, const ConvShape& g);
// kernel2's tile width for C/groups channels: 48, 64 or 128 (conv_dgrad.cu, conv_dgrad2.cuh).
int conv_dgrad_tile_n(int cg);
// The block tile (rows of the phase's pixels x channels) conv_dgrad_kernel<kernel> (kernel
// 1 or 2) runs this shape in.
struct DgradTile {
  int block_m, block_n;
};
DgradTile conv2d_dgrad_tile(const ConvShape& g, int kernel);

// How the wgrad/bias-gradient reduction over N*P*Q is split. chunk_rows = 0 picks
// automatically; otherwise it is the number of N*P*Q rows per chunk (rounded up to a
// multiple of 16). The plan depends on the shape and `chunk_rows` only, NOT on the device
// it runs on: the split fixes the order in which dw's partial sums are added, hence dw's
// rounding, and a shape-only plan makes dw bit-identical on every run, on every GPU and in
// the emulator (a training run resumed on another card, or checked on CI, reproduces it).
// The automatic plan is therefore sized for one card, the 132-SM H100 (conv_wgrad.cu):
// whole waves of the kernel's tile there; elsewhere it is correct, with a partial wave.
// (It depends on the pointers' alignment neither: the tile it plans for follows K/groups.)
struct WgradPlan {
  int chunk_rows;        // rows of N*P*Q per chunk (multiple of the K step)
  int chunks;            // of dw
  int bias_chunk_rows;   // rows per chunk of the bias gradient
  int bias_chunks;
  long long workspace_floats;  // what conv2d_wgrad needs (0 when nothing is split)
};
WgradPlan conv2d_wgrad_plan(const ConvShape& g, int chunk_rows);

// dw = gradient of conv with respect to w; db[k] = sum of dy over N, P, Q (db may be null).
// The partial sums of each chunk go to `workspace` (at least plan.workspace_floats floats,
// device memory the caller allocated; may be null when that is 0) and a second kernel adds
// them in chunk order: bit-identical results on every run and in every thread order.
// version: 0 picks the kernel (conv_wgrad_kernel2 where conv_wgrad_kernel2_applies, else
// conv_wgrad_kernel3 where conv_wgrad_kernel3_applies, else conv_wgrad_kernel1; kernel4,
// kernel2 with a 96-filter tile, instead of kernel2 where K/groups % 96 == 0 and K/groups %
// 128 != 0; kernel5, kernel3 with that tile, only when forced); 1-5 forces that one (throws std::invalid_argument where it
// does not apply: kernel4 where kernel2 does not, kernel5 where kernel3 does not). Under one
// plan all five give bit-identical dw.
void conv2d_wgrad(const float* x, const float* dy, float* dw, float* db, float* workspace,
                  long long workspace_floats, const ConvShape& g, int chunk_rows, cudaStream_t stream,
                  int version = 0);
// kernel2: C/groups % 4 == 0, K/groups % 4 == 0, x and dy 16-byte aligned (AlexNet conv2-5).
// kernel3: K/groups % 4 == 0, dy 16-byte aligned, any C (conv1, C = 3).
bool conv_wgrad_kernel2_applies(const float* x, const float* dy, const ConvShape& g);
bool conv_wgrad_kernel3_applies(const float* dy, const ConvShape& g);
// Which conv_wgrad_kernel<n> conv2d_wgrad(..., version) runs for these pointers and this
// shape; throws std::invalid_argument exactly where conv2d_wgrad would refuse `version`.
int conv2d_wgrad_version(const float* x, const float* dy, const ConvShape& g, int version = 0);

// The chunk reductions both wgrads (conv2d_wgrad, conv2d_wgrad_tc) launch on `stream`
// (conv_wgrad_reduce.cuh). conv_bias_grad_partials: out[c * K + k] = the sum of dy[row, k]
// over the rows [c * chunk_rows, (c + 1) * chunk_rows) of N*P*Q, in row order, c < chunks
// (chunks == 1: out is db). conv_sum_chunks: out[i] = parts[i] + parts[count + i] + ... +
// parts[(chunks - 1) * count + i], in that order.
void conv_bias_grad_partials(const float* dy, float* out, const ConvShape& g, int chunk_rows, int chunks,
                             cudaStream_t stream);
void conv_sum_chunks(const float* parts, float* out, int chunks, long long count, cudaStream_t stream);
// Throws std::invalid_argument unless `workspace` is non-null and holds `needed` floats
// (`given` of them are there) wherever needed > 0; `plan` names the plan function for the message.
void conv_check_workspace(const float* workspace, long long given, long long needed, const char* plan);
// Both wgrads' aliasing check: dw, db and the workspace (`workspace_floats` of the plan)
// share no byte with x, dy or each other (std::invalid_argument naming the pair).
void conv_wgrad_require_disjoint(const float* x, const float* dy, const float* dw, const float* db,
                                 const float* workspace, long long workspace_floats, const ConvShape& g);

}  // namespace ccn
