// The pieces the convolution drivers (conv_driver.cpp, conv_dgrad2_driver.cpp) share: a
// small ragged case, its ConvShape, seeded random tensors and dgrad's grid.
#pragma once

#include <cstddef>
#include <random>
#include <vector>

#include "conv.h"

namespace conv_cases {

// x: n, h, w, c; w: k, r, s, c / groups; stride; padding top, bottom, left, right.
struct Case {
  int n, h, w, c, k, r, s, stride, pt, pb, pl, pr, groups;
};

inline ccn::ConvShape shape_of(const Case& c) {
  return ccn::make_conv_shape(c.n, c.h, c.w, c.c, c.k, c.r, c.s, c.stride, c.pt, c.pb, c.pl, c.pr, c.groups);
}

// Uniform in [-1, 1), from `seed`: never all zeros, the same on every run.
inline std::vector<float> random_vec(std::size_t size, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  std::vector<float> v(size);
  for (auto& e : v) e = u(rng);
  return v;
}

// The launchers' dgrad grid for a bm x bn tile: x = the largest stride phase's row tiles,
// y = column tiles of C/g, z = groups * stride^2 phases.
inline dim3 dgrad_grid(const ccn::ConvShape& g, int bm, int bn) {
  const int st = g.stride;
  return dim3(ccn::ceil_div((long long)g.n * ((g.h + st - 1) / st) * ((g.w + st - 1) / st), bm),
              ccn::ceil_div(g.cg, bn), g.groups * st * st);
}

}  // namespace conv_cases
