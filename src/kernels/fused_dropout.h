// Dropout in one pass, with its mask drawn from a counter-based hash instead of a stored
// tensor: residual + dropout(x) forward, and backward regenerates the mask from the seed.
// LibTorch's dropout draws a Bernoulli tensor element by element from one generator (serially)
// and multiplies twice; this is one vectorised, threaded pass each way. The seed comes from
// LibTorch's default generator, so seeded runs and resumed runs repeat exactly.
#pragma once

#include <torch/torch.h>

namespace pelab {

// residual + dropout(x, p) (x alone when residual is undefined); plain when !training or p = 0.
// Takes the fused path for float32 CPU tensors of equal shape, LibTorch's ops otherwise.
torch::Tensor dropout_add(const torch::Tensor& residual, const torch::Tensor& x, double p,
                          bool training);

}  // namespace pelab
