// The ReLU FFN of a block as one unit, so that under bf16 products its hidden layer can stay
// bf16 between the two products (onednn_linear.h has the layers one by one).
#pragma once

#include <torch/torch.h>

namespace pelab {

// relu(x W1^T + b1) W2^T + b2, the ReLU FFN, differentiable: linear(second, linear_relu(first,
// x)), to the bit. Under bf16 products its hidden layer leaves the first product already rounded
// to bf16 (the second product's operand) and is saved so: it never makes a float32 round trip
// through memory, and training saves half the memory for it.
torch::Tensor feed_forward(const torch::nn::Linear& first, const torch::nn::Linear& second,
                           const torch::Tensor& x, bool use_onednn = true);
// residual + feed_forward(first, second, x): in inference (no gradient wanted) the add runs in
// the second product's epilogue, as linear_add's.
torch::Tensor feed_forward_add(const torch::nn::Linear& first, const torch::nn::Linear& second,
                               const torch::Tensor& x, const torch::Tensor& residual,
                               bool use_onednn = true);

}  // namespace pelab
