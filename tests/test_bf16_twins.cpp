// bf16 twins (kernels/bf16_twins.h): a float32 activation's bf16 rounding, remembered so that the
// products it feeds round it once. Found only while the tensor lives with the same values
// (an in-place change, another tensor or another view of it misses), forgotten when it dies; the
// products that take a twin give the bits of rounding anew, and LayerNorm's training forward
// leaves the twin of its output.
#include <gtest/gtest.h>

#include <torch/torch.h>

#include "compare.h"
#include "kernels/bf16_twins.h"
#include "kernels/layer_norm.h"
#include "kernels/onednn_linear.h"

using namespace pelab;
using pelab::test_compare::bf16_products_here;

namespace {

bool same_bits(const torch::Tensor& a, const torch::Tensor& b) {
  return a.sizes() == b.sizes() && a.scalar_type() == b.scalar_type() &&
         torch::equal(a.contiguous().view(torch::kShort), b.contiguous().view(torch::kShort));
}

}  // namespace

TEST(Bf16Twins, FoundOnlyForTheSameTensorWithTheSameValues) {
  auto x = torch::randn({6, 32});
  const auto twin = x.to(torch::kBFloat16);
  remember_bf16_twin(x, twin);
  ASSERT_TRUE(find_bf16_twin(x).defined());
  EXPECT_TRUE(same_bits(find_bf16_twin(x), twin));
  EXPECT_FALSE(find_bf16_twin(x.clone()).defined()) << "another tensor, the same values";
  EXPECT_FALSE(find_bf16_twin(x.t()).defined()) << "another view of the same storage";
  EXPECT_FALSE(find_bf16_twin(x.narrow(0, 1, 3)).defined()) << "another offset";
  x.add_(1.0);
  EXPECT_FALSE(find_bf16_twin(x).defined()) << "changed in place since";
  EXPECT_THROW(remember_bf16_twin(x, torch::zeros({6, 32})), c10::Error) << "not bf16";
  EXPECT_THROW(remember_bf16_twin(x, torch::zeros({5}, torch::kBFloat16)), c10::Error);
}

TEST(Bf16Twins, ForgottenWhenTheTensorDiesAndBounded) {
  const int64_t before = remembered_bf16_twins();
  {
    auto x = torch::randn({4, 16});
    remember_bf16_twin(x, x.to(torch::kBFloat16));
    EXPECT_EQ(remembered_bf16_twins(), before + 1);
  }
  EXPECT_EQ(remembered_bf16_twins(), before);
  std::vector<torch::Tensor> alive;
  for (int i = 0; i < 100; ++i) {
    alive.push_back(torch::randn({2, 16}));
    remember_bf16_twin(alive.back(), alive.back().to(torch::kBFloat16));
  }
  EXPECT_LE(remembered_bf16_twins(), 64);
  EXPECT_TRUE(find_bf16_twin(alive.back()).defined()) << "the newest stays";
  EXPECT_FALSE(find_bf16_twin(alive.front()).defined()) << "the oldest went first";
}

// Products under bf16 remember x's rounding and take it again for the next product with the same
// x; changing x in place between them must not let the second product see the old values.
TEST(Bf16Twins, ProductsRoundOnceAndSeeInPlaceChanges) {
  if (!bf16_products_here()) GTEST_SKIP() << "no AVX512_BF16 or no oneDNN";
  torch::manual_seed(3);
  auto x = torch::randn({2, 40, 24});
  const auto w1 = torch::randn({16, 24}), w2 = torch::randn({8, 24});
  const Bf16ProductsGuard bf16;
  const auto y1 = pelab::linear(x, w1, {});
  const auto twin = find_bf16_twin(x);
  ASSERT_TRUE(twin.defined()) << "the first product remembers x's rounding";
  EXPECT_TRUE(same_bits(twin.view({2, 40, 24}), bf16_copy(x)));
  const auto y2 = pelab::linear(x, w2, {});
  EXPECT_TRUE(same_bits(y2, pelab::linear(x.clone(), w2, {}))) << "a twin gives the same bits";
  x.mul_(-2.0);
  const auto y3 = pelab::linear(x, w1, {});
  EXPECT_TRUE(same_bits(y3, pelab::linear(x.clone(), w1, {})));
  EXPECT_FALSE(same_bits(y3, y1)) << "the old rounding was used after an in-place change";
}

// In training, LayerNorm keeps its float32 output (its gradient flows in float32) and leaves
// that output's bf16 rounding as its twin when it feeds products.
TEST(Bf16Twins, LayerNormLeavesItsOutputsRoundingWhenItFeedsProducts) {
  if (!bf16_products_here()) GTEST_SKIP() << "no AVX512_BF16 or no oneDNN";
  torch::manual_seed(5);
  torch::nn::LayerNorm norm(torch::nn::LayerNormOptions({48}));
  const auto x = (2.0 + torch::randn({3, 20, 48})).requires_grad_();
  const Bf16ProductsGuard bf16;
  const auto y = layer_norm(norm, x, false, true);
  EXPECT_EQ(y.scalar_type(), torch::kFloat);
  ASSERT_TRUE(y.requires_grad());
  const auto twin = find_bf16_twin(y);
  ASSERT_TRUE(twin.defined());
  EXPECT_TRUE(same_bits(twin.view(y.sizes()), bf16_copy(y.detach())));
  const auto not_feeding = layer_norm(norm, x, false, false);
  EXPECT_FALSE(find_bf16_twin(not_feeding).defined());
}
