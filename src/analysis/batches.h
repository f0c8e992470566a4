// Walking a dataset in batches, for the analyses that evaluate a model many times.
#pragma once

#include <torch/torch.h>

#include <algorithm>

#include "tasks/task.h"

namespace pelab {

struct Batch {
  torch::Tensor tokens, lengths, labels;
};

template <typename F>
void for_each_batch(const Dataset& data, int64_t batch_size, F&& f) {
  for (int64_t start = 0; start < data.size(); start += batch_size) {
    const int64_t end = std::min(data.size(), start + batch_size);
    f(Batch{data.tokens.slice(0, start, end), data.lengths.slice(0, start, end),
            data.labels.slice(0, start, end)});
  }
}

// Number of rows of `logits` [N, classes] whose argmax equals `labels` [N].
inline int64_t count_correct(const torch::Tensor& logits, const torch::Tensor& labels) {
  return logits.argmax(-1).eq(labels).sum().item<int64_t>();
}

}  // namespace pelab
