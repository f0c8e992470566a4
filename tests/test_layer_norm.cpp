// LayerNorm's row kernels (kernels/layer_norm.h), which run under bf16 products: the forward
// against a double-precision LayerNorm written out here, the bf16 output against the float32
// output rounded, the gradients against LibTorch's LayerNorm in double, the numbers independent of
// the thread count, and LibTorch's LayerNorm, to the bit, wherever the kernels do not run.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "compare.h"
#include "kernels/layer_norm.h"
#include "kernels/onednn_linear.h"

using namespace pelab;
using pelab::test_compare::bf16_products_here;

namespace {

torch::nn::LayerNorm make_norm(int64_t cols) {
  torch::manual_seed(7);
  torch::nn::LayerNorm norm(torch::nn::LayerNormOptions({cols}));
  torch::NoGradGuard no_grad;
  norm->weight.copy_(1.0 + 0.5 * torch::randn({cols}));
  norm->bias.copy_(0.3 * torch::randn({cols}));
  return norm;
}

// Rows far from zero mean and unit scale, as a residual stream is: a one-pass variance would
// lose digits here.
torch::Tensor make_input(int64_t batch, int64_t length, int64_t cols) {
  torch::manual_seed(11);
  return 4.0 + 3.0 * torch::randn({batch, length, cols});
}

// LayerNorm written out in double: mean, biased variance, then the affine map.
torch::Tensor reference_layer_norm(const torch::Tensor& x, const torch::nn::LayerNorm& norm) {
  const auto xd = x.to(torch::kDouble);
  const auto mean = xd.mean(-1, true);
  const auto var = (xd - mean).pow(2).mean(-1, true);
  return (xd - mean) / torch::sqrt(var + norm->options.eps()) *
             norm->weight.detach().to(torch::kDouble) +
         norm->bias.detach().to(torch::kDouble);
}

double max_relative_error(const torch::Tensor& actual, const torch::Tensor& expected) {
  const auto e = expected.to(torch::kDouble);
  return ((actual.to(torch::kDouble) - e).abs().max() / e.abs().max()).item<double>();
}

struct Gradients {
  torch::Tensor output, x, gamma, beta;
};

// Output and gradients of layer_norm (or, with `in_double`, of LibTorch's LayerNorm on doubles)
// for one upstream gradient.
Gradients run(torch::nn::LayerNorm& norm, const torch::Tensor& x, const torch::Tensor& upstream,
              bool in_double) {
  torch::nn::LayerNorm target = norm;
  if (in_double) {
    target = torch::nn::LayerNorm(norm->options);
    target->to(torch::kDouble);
    torch::NoGradGuard no_grad;
    target->weight.copy_(norm->weight);
    target->bias.copy_(norm->bias);
  }
  for (auto& p : target->parameters()) p.mutable_grad() = torch::Tensor();
  auto input = x.detach().clone().to(in_double ? torch::kDouble : torch::kFloat).requires_grad_();
  auto output = in_double ? target(input) : layer_norm(target, input, false, true);
  output.backward(upstream.to(output.scalar_type()));
  return {output.detach(), input.grad(), target->weight.grad(), target->bias.grad()};
}

}  // namespace

TEST(LayerNorm, ForwardMatchesLayerNormInDouble) {
  if (!bf16_products_here()) GTEST_SKIP() << "no bf16 products here";
  const Bf16ProductsGuard bf16;
  // 256 columns (whole vectors), 40 and 17 (a partial last vector); rows that fill no chunk.
  for (const int64_t cols : {256, 40, 17}) {
    auto norm = make_norm(cols);
    const auto x = make_input(3, 45, cols);
    torch::NoGradGuard no_grad;
    const auto y = layer_norm(norm, x, false, false);
    ASSERT_EQ(y.scalar_type(), torch::kFloat);
    EXPECT_LT(max_relative_error(y, reference_layer_norm(x, norm)), 2e-6) << cols << " columns";
  }
}

TEST(LayerNorm, Bf16OutputIsTheFloat32OutputRounded) {
  if (!bf16_products_here()) GTEST_SKIP() << "no bf16 products here";
  const Bf16ProductsGuard bf16;
  for (const int64_t cols : {256, 17}) {
    auto norm = make_norm(cols);
    const auto x = make_input(2, 300, cols);
    torch::NoGradGuard no_grad;
    const auto rounded = layer_norm(norm, x, false, true);
    ASSERT_EQ(rounded.scalar_type(), torch::kBFloat16);
    EXPECT_TRUE(torch::equal(rounded, bf16_copy(layer_norm(norm, x, false, false))))
        << cols << " columns";
  }
}

TEST(LayerNorm, GradientsMatchLayerNormInDouble) {
  if (!bf16_products_here()) GTEST_SKIP() << "no bf16 products here";
  const Bf16ProductsGuard bf16;
  for (const int64_t cols : {256, 17}) {
    auto norm = make_norm(cols);
    const auto x = make_input(3, 200, cols);
    torch::manual_seed(3);
    const auto upstream = torch::randn(x.sizes());
    const auto ours = run(norm, x, upstream, false);
    const auto reference = run(norm, x, upstream, true);
    // Under a gradient the output stays float32, for the products to round.
    ASSERT_EQ(ours.output.scalar_type(), torch::kFloat);
    EXPECT_LT(max_relative_error(ours.output, reference.output), 2e-6);
    EXPECT_LT(max_relative_error(ours.x, reference.x), 1e-5) << cols << " columns";
    EXPECT_LT(max_relative_error(ours.gamma, reference.gamma), 1e-5) << cols << " columns";
    EXPECT_LT(max_relative_error(ours.beta, reference.beta), 1e-5) << cols << " columns";
  }
}

TEST(LayerNorm, NumbersDoNotDependOnTheThreadCount) {
  if (!bf16_products_here()) GTEST_SKIP() << "no bf16 products here";
  const Bf16ProductsGuard bf16;
  auto norm = make_norm(256);
  const auto x = make_input(4, 130, 256);
  torch::manual_seed(5);
  const auto upstream = torch::randn(x.sizes());
  const int threads = at::get_num_threads();
  at::set_num_threads(1);
  const auto one = run(norm, x, upstream, false);
  at::set_num_threads(2);
  const auto two = run(norm, x, upstream, false);
  at::set_num_threads(threads);
  EXPECT_TRUE(torch::equal(one.output, two.output));
  EXPECT_TRUE(torch::equal(one.x, two.x));
  EXPECT_TRUE(torch::equal(one.gamma, two.gamma));
  EXPECT_TRUE(torch::equal(one.beta, two.beta));
}

TEST(LayerNorm, Float32ModelsAndTheExplicitPathKeepLibTorchsLayerNorm) {
  auto norm = make_norm(64);
  const auto x = make_input(2, 10, 64).requires_grad_();
  const auto libtorch = norm(x);
  // Without bf16 products: LibTorch's LayerNorm, its bits and its autograd node.
  const auto float32 = layer_norm(norm, x, false, true);
  EXPECT_TRUE(torch::equal(float32, libtorch));
  EXPECT_EQ(float32.grad_fn()->name(), libtorch.grad_fn()->name());
  if (!bf16_products_here()) return;
  const Bf16ProductsGuard bf16;
  // The explicit path (double back-propagation) too: a second derivative exists.
  auto explicit_path = layer_norm(norm, x, true, true);
  EXPECT_TRUE(torch::equal(explicit_path, libtorch));
  const auto first = torch::autograd::grad({explicit_path.pow(3).sum()}, {x}, {}, true, true)[0];
  const auto second = torch::autograd::grad({first.sum()}, {x})[0];
  EXPECT_GT(second.abs().sum().item<double>(), 0.0);
  // And the row kernels' own node under a gradient, as a check that the two paths differ.
  EXPECT_NE(layer_norm(norm, x, false, true).grad_fn()->name(), libtorch.grad_fn()->name());
}

TEST(LayerNorm, Bf16OperandGoesStraightIntoTheProducts) {
  if (!bf16_products_here()) GTEST_SKIP() << "no bf16 products here";
  const Bf16ProductsGuard bf16;
  auto norm = make_norm(64);
  torch::manual_seed(9);
  torch::nn::Linear layer(64, 32);
  const auto x = make_input(2, 12, 64);
  torch::NoGradGuard no_grad;
  const auto through_bf16 = linear(layer, layer_norm(norm, x, false, true));
  const auto through_float32 = linear(layer, layer_norm(norm, x, false, false));
  // The product rounds its float32 operand exactly as the bf16 LayerNorm rounds: the same bits.
  EXPECT_TRUE(torch::equal(through_bf16, through_float32));
}
