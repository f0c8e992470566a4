// The pieces the oneDNN linear layers (onednn_linear.cpp) share with the fused FFN
// (onednn_feed_forward.cpp). Internal to src/kernels: callers use onednn_linear.h and
// onednn_feed_forward.h.
#pragma once

#include <torch/torch.h>

#include <initializer_list>
#include <utility>
#include <vector>

namespace pelab::linear_parts {

// Whether x W^T + b goes through oneDNN: asked for, built in, and float32 CPU tensors.
bool takes_onednn(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias,
                  bool use_onednn);

// LibTorch 1.13's custom Functions cannot take an undefined tensor input: no bias is passed as
// an empty one, which forward and backward then ignore.
torch::Tensor bias_or_empty(const torch::Tensor& bias);

// Whether any defined input requires a gradient while grad mode is on.
bool gradient_wanted(std::initializer_list<torch::Tensor> inputs);

// x's shape with its last dimension replaced.
std::vector<int64_t> with_last(const torch::Tensor& x, int64_t last);

// W as the product x W^T takes it: W, or its bf16 copy under bf16. For a product no gradient
// flows through (`inference`) under a PackedWeightsScope: the scope's, prepared on first use
// (onednn_linear.cpp). Autograd Functions' forwards always run without grad mode, so the callers
// say which products are inference's.
torch::Tensor product_weight(const torch::Tensor& weight, bool bf16, bool inference);

// x as [rows, in] and W, as the product x W^T takes them: bf16 copies under bf16.
std::pair<torch::Tensor, torch::Tensor> product_operands(const torch::Tensor& x,
                                                         const torch::Tensor& weight, bool bf16,
                                                         bool inference);

// ReLU's backward and the bias gradient in one pass over [rows, cols]: dz = dy where y > 0 (y =
// relu(z), float32 or bf16, is positive exactly where z is), db = the column sums of dz (when
// db is defined, float32 [cols]). With `round` set it returns dz rounded to bf16 for the
// products, each row rounded while it is in cache where the CPU has the converter; otherwise it
// returns an undefined tensor. The numbers do not depend on the thread count.
torch::Tensor relu_backward_with_bias_grad(const torch::Tensor& dy, const torch::Tensor& y,
                                           torch::Tensor& dz, torch::Tensor& db, bool round);

// dy [rows, cols] float32 rounded to bf16 for the products and, where db is defined ([cols]),
// db = dy's column sums (the bias gradient), in one pass over dy's rows; the sums do not depend
// on the thread count. Under bf16 products only: float32 keeps LibTorch's sum and its bits.
torch::Tensor bias_grad_and_bf16(const torch::Tensor& dy, torch::Tensor& db);

// The bf16 FFN's first half: x as [rows, in] rounded to bf16, W1 rounded to bf16, and
// relu(x W1^T + b1) written by the product as bf16 [rows, hidden] (rounded as a bf16 copy of the
// float32 result would be).
struct Bf16HiddenLayer {
  torch::Tensor x, weight, hidden;
};
Bf16HiddenLayer bf16_hidden_layer(const torch::Tensor& x, const torch::Tensor& weight,
                                  const torch::Tensor& bias, bool inference);

// Whether `residual` (float32, on the CPU, of `shape`) can be added in a product's epilogue.
bool residual_fits(const torch::Tensor& residual, const std::vector<int64_t>& shape);

// residual + x2 W^T + b with the add in the product's epilogue; x2: [rows, in] and w as
// product_operands gives them (bf16 under bf16 products); the result shaped `shape`.
torch::Tensor product_add(const torch::Tensor& x2, const torch::Tensor& w,
                          const torch::Tensor& bias, const torch::Tensor& residual,
                          const std::vector<int64_t>& shape);

}  // namespace pelab::linear_parts
