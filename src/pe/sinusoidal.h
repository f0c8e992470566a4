// The sinusoidal table, shared by sinusoidal and rope_abs, and the absolute PEs' Gram kernel.
#pragma once

#include <torch/torch.h>

namespace pelab {

// P[pos, 2i] = sin(pos / base^(2i/d)), P[pos, 2i+1] = cos(pos / base^(2i/d)) (interleaved);
// [length, d_model], computed in float64 and returned as `dtype`.
torch::Tensor sinusoidal_table(int64_t length, int64_t d_model, double base,
                               torch::Dtype dtype = torch::kFloat);
// G_pp = P P^T of the first n rows of `table`, float64 [1, n, n].
torch::Tensor absolute_gram(const torch::Tensor& table, int64_t n);

}  // namespace pelab
