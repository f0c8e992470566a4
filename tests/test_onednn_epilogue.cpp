// The residual add inside the output products' epilogue (onednn_matmul's addend, linear_add):
// against double precision, and the same bits as adding after the product, for one layer and for
// whole models evaluated with and without gradients.
#include <gtest/gtest.h>

#include "fixtures.h"
#include "kernels/onednn_linear.h"
#include "model/transformer.h"

using namespace pelab;

namespace {

double relative_error_to(const torch::Tensor& actual, const torch::Tensor& expected) {
  const double scale = expected.norm().item<double>();
  const double diff =
      (actual.to(torch::kDouble) - expected.to(torch::kDouble)).norm().item<double>();
  return scale > 0 ? diff / scale : diff;
}

}  // namespace

// c = relu?(a b + bias) + addend, odd sizes and a transposed b, against double; and the addend
// is added to the float32 product exactly as a separate add would (the same bits).
TEST(OnednnEpilogue, AddendMatchesDoubleAndAddingAfterTheProduct) {
  if (!onednn_available()) GTEST_SKIP() << "built without oneDNN";
  torch::manual_seed(5);
  for (auto [M, K, N] :
       std::vector<std::array<int64_t, 3>>{{1, 3, 2}, {37, 29, 19}, {130, 64, 96}}) {
    for (bool relu : {false, true}) {
      auto a = torch::randn({M, K});
      auto b = torch::randn({N, K}).t();
      auto bias = torch::randn({N});
      auto addend = torch::randn({M, N});
      auto fused = torch::empty({M, N});
      onednn_matmul(a, b, bias, fused, relu, addend);
      auto expected =
          torch::mm(a.to(torch::kDouble), b.to(torch::kDouble)) + bias.to(torch::kDouble);
      if (relu) expected = expected.clamp_min(0);
      expected = expected + addend.to(torch::kDouble);
      EXPECT_LT(relative_error_to(fused, expected), 1e-5) << M << "x" << K << "x" << N;
      auto product = torch::empty({M, N});
      onednn_matmul(a, b, bias, product, relu);
      EXPECT_TRUE(torch::equal(fused, product + addend)) << M << "x" << K << "x" << N;
    }
  }
}

TEST(OnednnEpilogue, RefusesAnAddendOfTheWrongShapeOrType) {
  if (!onednn_available()) GTEST_SKIP() << "built without oneDNN";
  const auto a = torch::randn({3, 5}), b = torch::randn({5, 4});
  auto c = torch::empty({3, 4});
  EXPECT_THROW(onednn_matmul(a, b, {}, c, false, torch::randn({4, 3})), c10::Error);
  EXPECT_THROW(onednn_matmul(a, b, {}, c, false, torch::randn({3, 4}, torch::kDouble)), c10::Error);
  EXPECT_THROW(onednn_matmul(a, b, {}, c, false, torch::randn({4, 3}).t()), c10::Error);
}

// linear_add in inference (no gradients wanted) takes the epilogue; with gradients it adds after
// the differentiable layer. Both give the same numbers, fp32 and bf16, and the gradient path
// passes dY to the residual unchanged.
TEST(OnednnEpilogue, LinearAddIsTheSameBitsWithAndWithoutGradients) {
  torch::manual_seed(6);
  torch::nn::Linear layer(24, 16);
  const auto x = torch::randn({2, 9, 24});
  const auto residual = torch::randn({2, 9, 16});
  std::vector<bool> precisions{false};
  if (onednn_available() && cpu_has_avx512_bf16()) precisions.push_back(true);
  for (bool bf16 : precisions) {
    const Bf16ProductsGuard guard(bf16);
    torch::Tensor inference;
    {
      torch::NoGradGuard no_grad;
      inference = linear_add(layer, x, residual);
    }
    const auto stream = residual.clone().requires_grad_();
    const auto trained = linear_add(layer, x, stream);
    EXPECT_TRUE(trained.requires_grad());
    EXPECT_TRUE(torch::equal(inference, trained.detach())) << "bf16=" << bf16;
    EXPECT_TRUE(torch::equal(inference, residual + linear(layer, x).detach())) << "bf16=" << bf16;
    const auto upstream = torch::randn(trained.sizes());
    (trained * upstream).sum().backward();
    EXPECT_TRUE(torch::equal(stream.grad(), upstream)) << "bf16=" << bf16;
  }
  // A residual of another shape is not the layer's output: refused by the add, not hidden.
  torch::NoGradGuard no_grad;
  EXPECT_THROW(linear_add(layer, x, torch::randn({2, 9, 15})), c10::Error);
}

// Whole models in evaluation: without gradients the residual adds run in the products'
// epilogues (and under bf16 the FFN's hidden layer leaves its product as bf16); with gradients
// enabled they run after them, through float32 hidden layers. The logits are the same bits,
// fp32 and bf16, for keys from the residual stream and from the embeddings, and for MLA.
TEST(OnednnEpilogue, EvaluationLogitsAreTheSameBitsWithAndWithoutGradients) {
  torch::manual_seed(7);
  auto lengths = torch::tensor({11, 6}, torch::kLong);
  auto valid = torch::arange(11).unsqueeze(0) < lengths.unsqueeze(1);
  auto tokens = torch::randint(1, 30, {2, 11}, torch::kLong) * valid.to(torch::kLong);
  std::vector<bool> precisions{false};
  if (onednn_available() && cpu_has_avx512_bf16()) precisions.push_back(true);
  for (bool bf16 : precisions) {
    const Bf16ProductsGuard guard(bf16);
    for (const std::string pe : {"rope", "alibi", "mla", "sinusoidal"}) {
      for (const std::string kv_source : {"residual", "embedding"}) {
        ModelConfig c = test_fixtures::small_model_config(pe, "padding");
        c.kv_source = kv_source;
        c.dropout = 0.1;  // inactive in evaluation
        torch::manual_seed(8);
        Transformer model(c, 30, 4, 11);
        model->eval();
        const auto with_gradients = model->forward(tokens, lengths);
        ASSERT_TRUE(with_gradients.requires_grad());
        torch::NoGradGuard no_grad;
        const auto inference = model->forward(tokens, lengths);
        EXPECT_TRUE(torch::equal(inference, with_gradients.detach()))
            << pe << " kv=" << kv_source << " bf16=" << bf16;
      }
    }
  }
}
