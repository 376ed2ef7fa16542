// Launchers for softmax.cuh (see ops.h for the contract).
#include "softmax.cuh"
#include "softmax.h"

namespace ccn {

// One block per row: a multiple of 32 threads, no more than the classes need, at most 256
// (AlexNet's 1000 classes: 4 per thread).
static int row_threads(int classes) {
  int t = (classes + 31) / 32 * 32;
  return t < 32 ? 32 : (t > 256 ? 256 : t);
}

static void check_rows(long long rows, int classes) {
  CCN_REQUIRE(rows >= 1, "rows must be >= 1");
  CCN_REQUIRE(classes >= 1, "classes must be >= 1");
  CCN_REQUIRE_EXTENT(classes, "classes");  // the class loops step blockDim.x past classes
  CCN_REQUIRE(rows <= 0x7fffffffLL, "rows must be < 2^31 (one block per row)");
}

void softmax_cross_entropy(const float* logits, const int* labels, float* probs, float* row_loss, float* loss,
                          long long rows, int classes, cudaStream_t stream) {
  check_rows(rows, classes);
  CCN_REQUIRE(logits && labels && probs && row_loss && loss, "null pointer");
  CCN_LAUNCH(softmax_xent_forward_kernel1, static_cast<unsigned>(rows), row_threads(classes), 0, stream)(
      logits, labels, probs, row_loss, classes);
  CCN_CHECK_LAUNCH("softmax_xent_forward_kernel1");
  const int t = rows >= 256 ? 256 : static_cast<int>((rows + 31) / 32 * 32);
  CCN_LAUNCH(softmax_xent_mean_kernel1, 1, t, 0, stream)(row_loss, loss, rows);
  CCN_CHECK_LAUNCH("softmax_xent_mean_kernel1");
}

void softmax_cross_entropy_backward(const float* probs, const int* labels, float* dlogits, long long rows, int classes,
                           float inv_rows, cudaStream_t stream) {
  check_rows(rows, classes);
  CCN_REQUIRE(probs && labels && dlogits, "null pointer");
  CCN_LAUNCH(softmax_xent_backward_kernel1, grid_stride_blocks(rows * classes, 256), 256, 0, stream)(
      probs, labels, dlogits, rows, classes, inv_rows);
  CCN_CHECK_LAUNCH("softmax_xent_backward_kernel1");
}

void topk_errors(const float* probs, const int* labels, long long rows, int classes, const int* ks, int nk,
                 int* counts, cudaStream_t stream) {
  check_rows(rows, classes);
  CCN_REQUIRE(nk >= 1, "need at least one k");
  CCN_REQUIRE(probs && labels && ks && counts, "null pointer");
  for (int j = 0; j < nk; ++j) CCN_REQUIRE(ks[j] >= 1, "every k must be >= 1");
  for (int first = 0; first < nk; first += kMaxTopK) {
    TopKList list{};
    list.count = nk - first < kMaxTopK ? nk - first : kMaxTopK;
    for (int j = 0; j < list.count; ++j) list.k[j] = ks[first + j];
    CCN_LAUNCH(topk_errors_kernel1, static_cast<unsigned>(rows), row_threads(classes), 0, stream)(
        probs, labels, classes, list, counts + first);
    CCN_CHECK_LAUNCH("topk_errors_kernel1");
  }
}

}  // namespace ccn
