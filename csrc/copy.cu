// Launchers for copy.cuh (see ops.h for the contract).
#include "copy.cuh"
#include "copy.h"

namespace ccn {

static int channel_copy(float* whole, float* const* parts, const int* channels, int count, long long rows,
                        bool split, const float* beta, cudaStream_t stream) {
  CCN_REQUIRE(count >= 1, "need at least one part");
  CCN_REQUIRE(rows >= 0, "rows must be >= 0");
  CCN_REQUIRE(parts && channels, "null part table");
  long long total = 0;
  for (int i = 0; i < count; ++i) {
    CCN_REQUIRE(channels[i] >= 0, "part " + std::to_string(i) + ": channels must be >= 0");
    total += channels[i];
  }
  CCN_REQUIRE(total <= 0x7fffffffLL, "too many channels in total (over 2^31 - 1)");
  if (rows == 0 || total == 0) return 0;
  CCN_REQUIRE(whole, "null pointer");
  for (int i = 0; i < count; ++i)
    CCN_REQUIRE(channels[i] == 0 || parts[i], "part " + std::to_string(i) + ": null pointer");
  // No part may share a byte with the whole array (one side is written while the other is
  // read), nor, when splitting, with another part (both written).
  for (int i = 0; i < count; ++i) {
    const long long fi = rows * channels[i];
    CCN_REQUIRE(!floats_overlap(parts[i], fi, whole, rows * total),
                "part " + std::to_string(i) + " and the whole array overlap in memory");
    for (int j = 0; split && j < i; ++j)
      CCN_REQUIRE(!floats_overlap(parts[i], fi, parts[j], rows * channels[j]),
                  "parts " + std::to_string(j) + " and " + std::to_string(i) + " overlap in memory (both written)");
  }
  const int whole_channels = static_cast<int>(total);
  int launches = 0;
  int i = 0, offset = 0;
  while (i < count) {
    // One launch over the channel span of up to kMaxChannelParts non-empty parts.
    ChannelParts table{};
    int c = 0;
    const int span_begin = offset;
    bool vec = aligned16(whole) && whole_channels % 4 == 0;
    for (; i < count && c < kMaxChannelParts; ++i) {
      const int ci = channels[i];
      if (ci == 0) continue;
      table.ptr[c] = parts[i];
      table.channels[c] = ci;
      table.offset[c] = offset;
      table.beta[c] = beta ? beta[i] : 0.f;
      vec = vec && aligned16(parts[i]) && ci % 4 == 0 && offset % 4 == 0;
      offset += ci;
      ++c;
    }
    table.count = c;
    if (c == 0) break;
    const int span = offset - span_begin;
    const long long units = rows * (vec ? span / 4 : span);
    using Kernel = void (*)(float*, long long, int, int, int, const ChannelParts);
    Kernel k = vec ? (split ? channel_copy_kernel1<true, true> : channel_copy_kernel1<true, false>)
                   : (split ? channel_copy_kernel1<false, true> : channel_copy_kernel1<false, false>);
    CCN_LAUNCH(k, grid_stride_blocks(units, 256), 256, 0, stream)(whole, rows, whole_channels, span_begin, span, table);
    CCN_CHECK_LAUNCH("channel_copy_kernel1");
    ++launches;
  }
  return launches;
}

int concat_channels(float* whole, const float* const* parts, const int* channels, int count, long long rows,
                    cudaStream_t stream) {
  // The kernel only reads the parts when concatenating; one table type serves both ways.
  return channel_copy(whole, const_cast<float* const*>(parts), channels, count, rows, false, nullptr, stream);
}

int split_channels(const float* whole, float* const* parts, const int* channels, int count, long long rows,
                   cudaStream_t stream, const float* beta) {
  // The kernel only reads whole when splitting.
  return channel_copy(const_cast<float*>(whole), parts, channels, count, rows, true, beta, stream);
}

}  // namespace ccn
