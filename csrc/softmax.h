// Launchers of softmax.cuh (contract in ops.h). logits/probs [rows, classes], labels int32
// [rows], each in [0, classes) (a label outside gives a NaN loss, never a stray read).
#pragma once

#include "common.h"

namespace ccn {

// probs = softmax(logits) per row; row_loss[r] = log sum exp(z) - z[label] with
// z = logits[r] - max(logits[r]); loss[0] = mean of row_loss. row_loss is a [rows]
// workspace. rows >= 1. Two launches (per-row kernel, then the mean).
void softmax_cross_entropy(const float* logits, const int* labels, float* probs, float* row_loss, float* loss,
                          long long rows, int classes, cudaStream_t stream);

// dlogits = (probs - onehot(labels)) * inv_rows, with inv_rows = float32(1 / rows).
void softmax_cross_entropy_backward(const float* probs, const int* labels, float* dlogits, long long rows, int classes,
                           float inv_rows, cudaStream_t stream);

// counts[j] += number of top-ks[j] errors: rows where at least ks[j] classes other than
// the label have a probability >= the label's, or that hold a non-finite value. ks is a host array of nk values >= 1; counts is an int32 device
// array of nk entries that the caller zeroes. One launch per kMaxTopK = 16 values of k.
void topk_errors(const float* probs, const int* labels, long long rows, int classes, const int* ks, int nk,
                 int* counts, cudaStream_t stream);

}  // namespace ccn
