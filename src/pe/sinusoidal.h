#pragma once

#include <torch/torch.h>

namespace pelab {

// P[pos, 2i] = sin(pos / base^(2i/d)), P[pos, 2i+1] = cos(pos / base^(2i/d)); float32 [length, d].
torch::Tensor sinusoidal_table(int64_t length, int64_t d_model, double base);
// G_pp = P P^T for n positions, float64 [1, n, n].
torch::Tensor absolute_gram(const torch::Tensor& table, int64_t n);

}  // namespace pelab
