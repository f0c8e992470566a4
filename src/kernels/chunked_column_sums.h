// Column sums over the rows of a pass that runs on several threads, with numbers that do not
// depend on the thread count: the bias gradients of the oneDNN linear layers
// (onednn_linear_parts.cpp) and LayerNorm's gamma and beta gradients (layer_norm.cpp).
#pragma once

#include <torch/torch.h>

#include <algorithm>
#include <vector>

namespace pelab {

// Splits rows [0, rows) into fixed chunks of rows_per_chunk and calls
// chunk_pass(first, last, partials) for each chunk over the threads; partials holds, one after
// the other, a zeroed [cols] partial for each entry of `totals`, which the pass adds its rows'
// values into. Then totals[k] = the sum of the chunks' k-th partials, added in chunk order.
template <typename ChunkPass>
void sum_columns_in_chunks(int64_t rows, int64_t cols, int64_t rows_per_chunk,
                           const std::vector<float*>& totals, ChunkPass chunk_pass) {
  const int64_t chunks = (rows + rows_per_chunk - 1) / rows_per_chunk;
  const int64_t count = static_cast<int64_t>(totals.size());
  std::vector<float> partial(chunks * count * cols, 0.0f);
  at::parallel_for(0, chunks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t chunk = begin; chunk < end; ++chunk)
      chunk_pass(chunk * rows_per_chunk, std::min(rows, (chunk + 1) * rows_per_chunk),
                 partial.data() + chunk * count * cols);
  });
  for (int64_t k = 0; k < count; ++k) {
    float* total = totals[k];
    std::fill(total, total + cols, 0.0f);
    for (int64_t chunk = 0; chunk < chunks; ++chunk) {
      const float* part = partial.data() + (chunk * count + k) * cols;
      for (int64_t j = 0; j < cols; ++j) total[j] += part[j];
    }
  }
}

}  // namespace pelab
