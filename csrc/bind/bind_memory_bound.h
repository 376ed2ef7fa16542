// Python bindings of the memory-bound kernels: lrn, pool, dropout (+ the raw Philox
// generator), softmax, sgd, copy (tanh lives with relu in bind_activation.h). Included by
// bindings.cpp, compiled into _C and _emu. Pointers are integers; the Python side
// (cuda_convnet/backends/kernel_ops/) validates with cuda_convnet.checks first, the
// launchers check their own preconditions (std::invalid_argument -> ValueError).
#pragma once

#include <pybind11/stl.h>

#include <vector>

#include "bind/module.h"
#include "copy.h"
#include "dropout.h"
#include "lrn.h"
#include "philox.h"
#include "pool.h"
#include "sgd.h"
#include "softmax.h"

inline void bind_memory_bound(py::module_& m) {
  // ---------------------------------------------------------------- LRN
  m.def(
      "lrn",
      [](std::uintptr_t x, std::uintptr_t y, long long rows, int channels, int groups, int before, int after,
         float alpha, float neg_beta, float k, std::uintptr_t stream, int version) {
        py::gil_scoped_release nogil;
        ccn::lrn(ptr<const float>(x), ptr<float>(y), rows, channels, groups, before, after, alpha, neg_beta, k,
                 stream_of(stream), version);
      },
      py::arg("x"), py::arg("y"), py::arg("rows"), py::arg("channels"), py::arg("groups"), py::arg("before"),
      py::arg("after"), py::arg("alpha"), py::arg("neg_beta"), py::arg("k"), py::arg("stream") = 0,
      py::arg("version") = 0,
      "Cross-channel LRN of a [rows, channels] array in channel groups; alpha is alpha'; version: 0 the launcher "
      "picks, 1 or 2 forces lrn_*_kernel1/2 (see csrc/lrn.h).");
  m.def(
      "lrn_backward",
      [](std::uintptr_t x, std::uintptr_t y, std::uintptr_t dy, std::uintptr_t dx, long long rows, int channels,
         int groups, int before, int after, float alpha, float neg_beta, float k, float coef, std::uintptr_t stream,
         int version, bool relu_mask) {
        py::gil_scoped_release nogil;
        ccn::lrn_backward(ptr<const float>(x), ptr<const float>(y), ptr<const float>(dy), ptr<float>(dx), rows,
                          channels, groups, before, after, alpha, neg_beta, k, coef, stream_of(stream), version,
                          relu_mask);
      },
      py::arg("x"), py::arg("y"), py::arg("dy"), py::arg("dx"), py::arg("rows"), py::arg("channels"),
      py::arg("groups"), py::arg("before"), py::arg("after"), py::arg("alpha"), py::arg("neg_beta"), py::arg("k"),
      py::arg("coef"), py::arg("stream") = 0, py::arg("version") = 0, py::arg("relu_mask") = false,
      "dx of lrn; relu_mask: dx = x > 0 ? dx : 0 (the backward of a ReLU producing x, fused).");
  m.def(
      "lrn_version",
      [](long long rows, int channels, int groups, int version) {
        return ccn::lrn_version(rows, channels, groups, version);
      },
      py::arg("rows"), py::arg("channels"), py::arg("groups") = 1, py::arg("version") = 0,
      "Which lrn_*_kernel<n> lrn and lrn_backward(..., version) run for a [rows, channels] array in channel groups.");

  // ---------------------------------------------------------------- max pooling
  m.def(
      "max_pool",
      [](std::uintptr_t x, std::uintptr_t y, int n, int h, int w, int c, int size, int stride, int top, int bottom,
         int left, int right, int p, int q, std::uintptr_t stream) {
        py::gil_scoped_release nogil;
        ccn::max_pool(ptr<const float>(x), ptr<float>(y), n, h, w, c, size, stride, top, bottom, left, right,
                              p, q, stream_of(stream));
      },
      py::arg("x"), py::arg("y"), py::arg("n"), py::arg("h"), py::arg("w"), py::arg("c"), py::arg("size"),
      py::arg("stride"), py::arg("top"), py::arg("bottom"), py::arg("left"), py::arg("right"), py::arg("p"),
      py::arg("q"), py::arg("stream") = 0);
  m.def(
      "max_pool_backward",
      [](std::uintptr_t x, std::uintptr_t y, std::uintptr_t dy, std::uintptr_t dx, int n, int h, int w, int c,
         int size, int stride, int top, int bottom, int left, int right, int p, int q, std::uintptr_t stream,
         bool relu_mask) {
        py::gil_scoped_release nogil;
        ccn::max_pool_backward(ptr<const float>(x), ptr<const float>(y), ptr<const float>(dy), ptr<float>(dx), n, h,
                               w, c, size, stride, top, bottom, left, right, p, q, stream_of(stream), relu_mask);
      },
      py::arg("x"), py::arg("y"), py::arg("dy"), py::arg("dx"), py::arg("n"), py::arg("h"), py::arg("w"),
      py::arg("c"), py::arg("size"), py::arg("stride"), py::arg("top"), py::arg("bottom"), py::arg("left"),
      py::arg("right"), py::arg("p"), py::arg("q"), py::arg("stream") = 0, py::arg("relu_mask") = false,
      "dx of max_pool; relu_mask: dx = x > 0 ? dx : 0 (the backward of a ReLU producing x, fused).");

  // ---------------------------------------------------------------- dropout, Philox
  m.def(
      "dropout",
      [](std::uintptr_t x, std::uintptr_t y, long long rows, long long channels, int groups, unsigned long long seed,
         unsigned long long offset, unsigned threshold, float scale, bool mask, std::uintptr_t stream) {
        py::gil_scoped_release nogil;
        ccn::dropout(ptr<const float>(x), ptr<float>(y), rows, channels, groups, seed, offset, threshold, scale, mask,
                     stream_of(stream));
      },
      py::arg("x"), py::arg("y"), py::arg("rows"), py::arg("channels"), py::arg("groups"), py::arg("seed"),
      py::arg("offset"), py::arg("threshold"), py::arg("scale"), py::arg("mask"), py::arg("stream") = 0,
      "y = keep ? x * scale : 0 (mask) or y = x * scale on [rows, channels], channel group g's keep from "
      "Philox4x32-10 at offset + g (see csrc/dropout.h).");
  m.def(
      "philox4x32",
      [](std::uintptr_t counters, std::uintptr_t keys, std::uintptr_t out, long long n, std::uintptr_t stream) {
        py::gil_scoped_release nogil;
        ccn::philox4x32(ptr<const unsigned>(counters), ptr<const unsigned>(keys), ptr<unsigned>(out), n,
                        stream_of(stream));
      },
      py::arg("counters"), py::arg("keys"), py::arg("out"), py::arg("n"), py::arg("stream") = 0,
      "out[i] = Philox4x32-10(counters[i], keys[i]); uint32 arrays (n, 4), (n, 2), (n, 4).");

  // ---------------------------------------------------------------- softmax, top-k
  m.def(
      "softmax_cross_entropy",
      [](std::uintptr_t logits, std::uintptr_t labels, std::uintptr_t probs, std::uintptr_t row_loss,
         std::uintptr_t loss, long long rows, int classes, std::uintptr_t stream) {
        py::gil_scoped_release nogil;
        ccn::softmax_cross_entropy(ptr<const float>(logits), ptr<const int>(labels), ptr<float>(probs),
                                  ptr<float>(row_loss), ptr<float>(loss), rows, classes, stream_of(stream));
      },
      py::arg("logits"), py::arg("labels"), py::arg("probs"), py::arg("row_loss"), py::arg("loss"), py::arg("rows"),
      py::arg("classes"), py::arg("stream") = 0);
  m.def(
      "softmax_cross_entropy_backward",
      [](std::uintptr_t probs, std::uintptr_t labels, std::uintptr_t dlogits, long long rows, int classes,
         float inv_rows, std::uintptr_t stream) {
        py::gil_scoped_release nogil;
        ccn::softmax_cross_entropy_backward(ptr<const float>(probs), ptr<const int>(labels), ptr<float>(dlogits), rows,
                                   classes, inv_rows, stream_of(stream));
      },
      py::arg("probs"), py::arg("labels"), py::arg("dlogits"), py::arg("rows"), py::arg("classes"),
      py::arg("inv_rows"), py::arg("stream") = 0);
  m.def(
      "topk_errors",
      [](std::uintptr_t probs, std::uintptr_t labels, long long rows, int classes, const std::vector<int>& ks,
         std::uintptr_t counts, std::uintptr_t stream) {
        py::gil_scoped_release nogil;
        ccn::topk_errors(ptr<const float>(probs), ptr<const int>(labels), rows, classes, ks.data(),
                         static_cast<int>(ks.size()), ptr<int>(counts), stream_of(stream));
      },
      py::arg("probs"), py::arg("labels"), py::arg("rows"), py::arg("classes"), py::arg("ks"), py::arg("counts"),
      py::arg("stream") = 0, "counts[j] += top-ks[j] errors (rank = #classes != label with prob >= the label's; error iff rank >= k\n"
      "or the row holds a non-finite value); counts is a zeroed int32 array.");

  // ---------------------------------------------------------------- SGD
  m.def(
      "sgd_update",
      [](const std::vector<std::uintptr_t>& w, const std::vector<std::uintptr_t>& g,
         const std::vector<std::uintptr_t>& v, const std::vector<long long>& n, float lr, float momentum,
         float decay_lr, std::uintptr_t stream) {
        if (w.size() != g.size() || w.size() != v.size() || w.size() != n.size())
          throw std::invalid_argument("sgd_update: w, g, v and n must have the same length");
        std::vector<ccn::SgdTensor> table(w.size());
        for (std::size_t i = 0; i < w.size(); ++i)
          table[i] = ccn::SgdTensor{ptr<float>(w[i]), ptr<const float>(g[i]), ptr<float>(v[i]), n[i]};
        py::gil_scoped_release nogil;
        return ccn::sgd_update(table.data(), static_cast<int>(table.size()), lr, momentum, decay_lr,
                               stream_of(stream));
      },
      py::arg("w"), py::arg("g"), py::arg("v"), py::arg("n"), py::arg("lr"), py::arg("momentum"),
      py::arg("decay_lr"), py::arg("stream") = 0,
      "The paper's update over every tensor in one launch (see csrc/sgd.h); returns the number of launches.");

  // ---------------------------------------------------------------- channel concat / split
  m.def(
      "concat_channels",
      [](std::uintptr_t whole, const std::vector<std::uintptr_t>& parts, const std::vector<int>& channels,
         long long rows, std::uintptr_t stream) {
        if (parts.size() != channels.size())
          throw std::invalid_argument("concat_channels: parts and channels must have the same length");
        std::vector<const float*> p(parts.size());
        for (std::size_t i = 0; i < parts.size(); ++i) p[i] = ptr<const float>(parts[i]);
        py::gil_scoped_release nogil;
        return ccn::concat_channels(ptr<float>(whole), p.data(), channels.data(), static_cast<int>(p.size()), rows,
                                    stream_of(stream));
      },
      py::arg("whole"), py::arg("parts"), py::arg("channels"), py::arg("rows"), py::arg("stream") = 0,
      "whole[:, off_i:off_i + C_i] = part_i; returns the number of launches.");
  m.def(
      "split_channels",
      [](std::uintptr_t whole, const std::vector<std::uintptr_t>& parts, const std::vector<int>& channels,
         long long rows, std::uintptr_t stream, const std::vector<float>& beta) {
        if (parts.size() != channels.size())
          throw std::invalid_argument("split_channels: parts and channels must have the same length");
        if (!beta.empty() && beta.size() != parts.size())
          throw std::invalid_argument("split_channels: beta must be empty or have one entry per part");
        std::vector<float*> p(parts.size());
        for (std::size_t i = 0; i < parts.size(); ++i) p[i] = ptr<float>(parts[i]);
        py::gil_scoped_release nogil;
        return ccn::split_channels(ptr<const float>(whole), p.data(), channels.data(), static_cast<int>(p.size()),
                                   rows, stream_of(stream), beta.empty() ? nullptr : beta.data());
      },
      py::arg("whole"), py::arg("parts"), py::arg("channels"), py::arg("rows"), py::arg("stream") = 0,
      py::arg("beta") = std::vector<float>{},
      "part_i = whole[:, off_i:off_i + C_i] + beta_i * part_i (beta empty: all 0, part_i not read); returns the "
      "number of launches.");
}
