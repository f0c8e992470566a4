#include <gtest/gtest.h>

#include "analysis/decomposition.h"
#include "analysis/matrix_stats.h"
#include "fixtures.h"

using namespace pelab;

namespace {

double relative(const torch::Tensor& a, const torch::Tensor& b) {
  return ((a.to(torch::kDouble) - b.to(torch::kDouble)).norm() / b.to(torch::kDouble).norm())
      .item<double>();
}

}  // namespace

TEST(Decomposition, TermsSumToTheLogitsForEveryPeInFloat) {
  for (const std::string pe : {"nope", "sinusoidal", "learned", "relative", "t5", "alibi", "rope",
                               "rope_abs", "mla", "xpos", "prope", "kerple", "fire", "cope"}) {
    for (const std::string kv : {"residual", "embedding"}) {
      // Untrained weights suffice: the identity holds for any parameters.
      auto t = test_fixtures::briefly_trained(pe, {"model.kv_source=" + kv}, 0);
      for (int64_t layer = 0; layer < 2; ++layer) {
        const auto d = decompose_logits(t.model, t.data.tokens[3],
                                        t.data.lengths[3].item<int64_t>(), layer, 1, true);
        auto sum = torch::zeros_like(d.logits);
        for (const auto& term : d.terms) sum += term.matrix;
        EXPECT_LT(relative(sum, d.logits), 1e-5) << pe << " " << kv << " layer " << layer;
        EXPECT_LT(d.reconstruction_relative_error, 1e-5);
        const bool absolute = pe == "sinusoidal" || pe == "learned" || pe == "rope_abs";
        EXPECT_EQ(d.terms.size(), absolute ? 4u
                                  : (pe == "relative" || pe == "t5" || pe == "alibi" ||
                                     pe == "mla" || pe == "kerple" || pe == "fire" || pe == "cope")
                                      ? 2u
                                      : 1u)
            << pe;
        EXPECT_EQ(d.rotary.present,
                  pe == "rope" || pe == "rope_abs" || pe == "mla" || pe == "xpos" || pe == "prope")
            << pe;
        // CoPE splits its content-counted positional term out as its own term.
        if (pe == "cope") {
          EXPECT_EQ(d.terms.back().name, "contextual_position");
        }
      }
    }
  }
}

TEST(Decomposition, TermsSumToTheLogitsInDouble) {
  for (const std::string pe : {"sinusoidal", "rope_abs", "alibi", "mla"}) {
    auto t = test_fixtures::briefly_trained(pe);
    t.model->to(torch::kDouble);
    const auto d =
        decompose_logits(t.model, t.data.tokens[0], t.data.lengths[0].item<int64_t>(), 1, 2, true);
    EXPECT_EQ(d.logits.scalar_type(), torch::kDouble);
    EXPECT_LT(d.reconstruction_relative_error, 1e-12) << pe;
  }
}

// With no token content at all (zero token embeddings, LayerNorm and projection biases), the
// first layer's logits are pure position: every content term must vanish.
TEST(Decomposition, PositionOnlyInputsGiveOnlyThePositionTerm) {
  auto t = test_fixtures::briefly_trained("sinusoidal");
  {
    torch::NoGradGuard no_grad;
    t.model->token_embedding->weight.zero_();
    auto& block = *t.model->blocks[0]->as<Block>();
    block.attention_norm->bias.zero_();
    auto& attention = dynamic_cast<MultiHeadAttention&>(*block.attention);
    attention.query->bias.zero_();
    attention.key->bias.zero_();
  }
  const auto d =
      decompose_logits(t.model, t.data.tokens[0], t.data.lengths[0].item<int64_t>(), 0, 0, false);
  ASSERT_EQ(d.terms.size(), 4u);
  for (int i = 0; i < 3; ++i)
    EXPECT_LT(d.terms[i].frobenius_norm, 1e-5 * d.logits.norm().item<double>()) << d.terms[i].name;
  EXPECT_EQ(d.terms[3].name, "position_position");
  EXPECT_LT(relative(d.terms[3].matrix, d.logits), 1e-5);
  // Positions only, sinusoidal, LayerNorm per token: the matrix is not exactly Toeplitz, but close
  // to the positional Gram matrix's structure; and it covers all positions when asked.
  EXPECT_EQ(d.positions, t.data.tokens.size(1));
}

TEST(Decomposition, RotaryViewMatchesTheMeanKernelWhenEveryPairCarriesTheSameGram) {
  // RoPE heads: the exact rotated logits equal A o T only in special cases; at distance 0 (the
  // diagonal) rotation does nothing, so diag(rotated) == diag(A) always.
  auto t = test_fixtures::briefly_trained("rope");
  const auto d =
      decompose_logits(t.model, t.data.tokens[1], t.data.lengths[1].item<int64_t>(), 0, 0, true);
  ASSERT_TRUE(d.rotary.present);
  EXPECT_TRUE(torch::allclose(d.rotary.rotary_channels.matrix.diagonal(),
                              d.rotary.content_gram.matrix.diagonal(), 1e-4, 1e-5));
  EXPECT_TRUE(torch::allclose(d.rotary.kernel.diagonal(),
                              torch::ones({d.positions}, torch::dtype(torch::kDouble))));
  // Full rotary fraction: no unrotated channels.
  EXPECT_EQ(d.rotary.other_channels.frobenius_norm, 0);
}

TEST(Decomposition, BadLayerOrHeadIsAConfigError) {
  auto t = test_fixtures::briefly_trained("rope");
  EXPECT_THROW(decompose_logits(t.model, t.data.tokens[0], 5, 2, 0, true), ConfigError);
  EXPECT_THROW(decompose_logits(t.model, t.data.tokens[0], 5, 0, 4, true), ConfigError);
  EXPECT_THROW(decompose_logits(t.model, t.data.tokens[0], 5, -1, 0, true), ConfigError);
}

TEST(Toeplitz, ProjectionOfAToeplitzMatrixIsItself) {
  const int64_t n = 9;
  auto first = torch::randn({2 * n - 1}, torch::kDouble);
  auto idx = torch::arange(n);
  auto toeplitz = first.index({idx.unsqueeze(1) - idx.unsqueeze(0) + (n - 1)});
  EXPECT_TRUE(torch::allclose(nearest_toeplitz(toeplitz), toeplitz, 0, 1e-14));
  EXPECT_LT(toeplitz_distance(toeplitz), 1e-14);
}

TEST(Toeplitz, ResidualIsOrthogonalToEveryToeplitzMatrix) {
  const int64_t n = 7;
  auto m = torch::randn({n, n}, torch::kDouble);
  auto projection = nearest_toeplitz(m);
  auto idx = torch::arange(n);
  auto other = torch::randn({2 * n - 1}, torch::kDouble)
                   .index({idx.unsqueeze(1) - idx.unsqueeze(0) + (n - 1)});
  EXPECT_NEAR(((m - projection) * other).sum().item<double>(), 0, 1e-12);
  EXPECT_TRUE(torch::allclose(nearest_toeplitz(projection), projection, 0, 1e-14));
  EXPECT_GT(toeplitz_distance(m), 0.5);  // a random matrix is far from Toeplitz
  EXPECT_EQ(toeplitz_distance(torch::zeros({n, n})), 0);
}
