// The ReLU FFN as one unit (kernels/onednn_feed_forward.h): under bf16 products its hidden layer
// stays bf16 between the two products. It must give the bits of the layers one by one
// (linear_relu, then linear or linear_add), in training (outputs and every gradient) and in
// inference, and stay within bf16's rounding of the float32 FFN.
#include <gtest/gtest.h>

#include "compare.h"
#include "kernels/onednn_feed_forward.h"
#include "kernels/onednn_linear.h"

using namespace pelab;
using namespace pelab::test_compare;

namespace {

// bf16 operands round to 8-bit mantissas (0.4% each; kBf16Tolerance). Below the ReLU (dx, dW1, db1)
// a few hidden values within the products' rounding of 0 (about 0.3% here) change sides, and each
// takes its whole gradient with it: an error of sqrt(0.003), about 5%, in norm.
constexpr double kBf16BelowReluTolerance = 8e-2;

struct FfnGradients {
  torch::Tensor output, x, w1, b1, w2, b2;
};

FfnGradients run_ffn(torch::nn::Linear& first, torch::nn::Linear& second, const torch::Tensor& x,
                     const torch::Tensor& upstream, bool as_one_unit) {
  for (auto& p : first->parameters()) p.mutable_grad() = torch::Tensor();
  for (auto& p : second->parameters()) p.mutable_grad() = torch::Tensor();
  auto input = x.detach().clone().requires_grad_(true);
  auto output =
      as_one_unit ? feed_forward(first, second, input) : linear(second, linear_relu(first, input));
  output.backward(upstream);
  return {output.detach(),
          input.grad(),
          first->weight.grad().clone(),
          first->bias.grad().clone(),
          second->weight.grad().clone(),
          second->bias.grad().clone()};
}

}  // namespace

// Training: output and the gradients of x, W1, b1, W2 and b2 are the layers' own bits, for 3, 21
// and 900 rows (one chunk of the ReLU backward, 256 rows, and four); and the gradients are the
// float32 FFN's within bf16's rounding.
TEST(OnednnFeedForward, Bf16TrainingIsTheSameBitsAsTheLayersOneByOne) {
  if (!bf16_products_here()) GTEST_SKIP() << "no bf16 products here";
  torch::manual_seed(11);
  torch::nn::Linear first(24, 72), second(72, 24);
  for (int64_t rows : {1, 7, 300}) {
    const auto x = torch::randn({rows, 3, 24});
    const auto upstream = torch::randn({rows, 3, 24});
    FfnGradients unit, layers;
    {
      const Bf16ProductsGuard bf16(true);
      unit = run_ffn(first, second, x, upstream, true);
      layers = run_ffn(first, second, x, upstream, false);
    }
    const auto reference = run_ffn(first, second, x, upstream, false);  // float32
    const std::vector<std::pair<const char*, std::pair<torch::Tensor, torch::Tensor>>> pairs{
        {"output", {unit.output, layers.output}},
        {"dx", {unit.x, layers.x}},
        {"dW1", {unit.w1, layers.w1}},
        {"db1", {unit.b1, layers.b1}},
        {"dW2", {unit.w2, layers.w2}},
        {"db2", {unit.b2, layers.b2}}};
    const std::vector<torch::Tensor> float32{reference.output, reference.x,  reference.w1,
                                             reference.b1,     reference.w2, reference.b2};
    for (size_t i = 0; i < pairs.size(); ++i) {
      const auto& [name, tensors] = pairs[i];
      const bool below_relu = i >= 1 && i <= 3;  // dx, dW1, db1
      EXPECT_TRUE(torch::equal(tensors.first, tensors.second)) << name << ", " << rows << " rows";
      EXPECT_LT(relative_error(tensors.first, float32[i]),
                below_relu ? kBf16BelowReluTolerance : kBf16Tolerance)
          << name << ", " << rows;
    }
    EXPECT_FALSE(torch::equal(unit.output, reference.output)) << "bf16 left no trace: " << rows;
  }
}

// Without bf16 products the unit is the layers themselves: float32 bits.
TEST(OnednnFeedForward, Float32IsTheLayersOneByOne) {
  torch::manual_seed(12);
  torch::nn::Linear first(16, 40), second(40, 16);
  const auto x = torch::randn({5, 16}), upstream = torch::randn({5, 16});
  const auto unit = run_ffn(first, second, x, upstream, true);
  const auto layers = run_ffn(first, second, x, upstream, false);
  EXPECT_TRUE(torch::equal(unit.output, layers.output));
  EXPECT_TRUE(torch::equal(unit.x, layers.x));
  EXPECT_TRUE(torch::equal(unit.w1, layers.w1));
}

// The FFN's inference path under bf16 (hidden layer written bf16 by the first product) against
// the layers one by one with gradients: the same bits, on odd row counts and a 3-D input.
TEST(OnednnFeedForward, InferenceWithTheResidualIsTheSameBitsAsTheLayersOneByOne) {
  if (!onednn_available() || !cpu_has_avx512_bf16()) GTEST_SKIP() << "no bf16 products here";
  torch::manual_seed(9);
  torch::nn::Linear first(24, 72), second(72, 24);
  for (int64_t rows : {1, 7, 130}) {
    const auto x = torch::randn({rows, 3, 24});
    const auto residual = torch::randn({rows, 3, 24});
    const Bf16ProductsGuard guard(true);
    const auto layered = linear_add(second, linear_relu(first, x), residual);
    ASSERT_TRUE(layered.requires_grad());
    torch::NoGradGuard no_grad;
    const auto fused = feed_forward_add(first, second, x, residual);
    EXPECT_TRUE(torch::equal(fused, layered.detach())) << rows << " rows";
    // and both are the float32 FFN within bf16's rounding
    const Bf16ProductsGuard fp32(false);
    const auto reference = residual + second(torch::relu(first(x)));
    EXPECT_LT(relative_error(fused, reference), kBf16Tolerance) << rows << " rows";
    EXPECT_FALSE(torch::equal(fused, reference)) << "bf16 products left no trace: " << rows;
  }
}
