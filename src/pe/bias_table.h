// Shared by the learned relative biases (relative, t5): bias[h, i, j] = table[h, index[i, j]].
#pragma once

#include <torch/torch.h>

namespace pelab {

// table: [H, K] (one layer's row of the PE's table); index: [L, L] int64 in [0, K).
// Differentiable in table. Returns [H, L, L].
inline torch::Tensor lookup_bias(const torch::Tensor& table, const torch::Tensor& index) {
  const auto L = index.size(0);
  return table.index_select(1, index.reshape(-1)).view({table.size(0), L, L});
}

}  // namespace pelab
