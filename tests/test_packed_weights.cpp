// PackedWeightsScope (onednn_linear.h): evaluation's products take each weight prepared once for
// the scope (its bf16 copy, its copy in oneDNN's blocked layout) instead of once per batch. The
// logits must be the same bits as without the scope, batch after batch and for batches of other
// sizes; nothing prepared may outlive the scope (a weight changed after it is read afresh).
#include <gtest/gtest.h>

#include "fixtures.h"
#include "kernels/onednn_linear.h"
#include "model/transformer.h"

using namespace pelab;

namespace {

std::vector<bool> precisions_here() {
  std::vector<bool> precisions{false};
  if (onednn_available() && cpu_has_avx512_bf16()) precisions.push_back(true);
  return precisions;
}

struct Batch {
  torch::Tensor tokens, lengths;
};

// `count` right-padded sequences of up to 11 tokens.
Batch random_batch(int64_t count, int64_t seed) {
  torch::manual_seed(seed);
  auto lengths = torch::randint(3, 12, {count}, torch::kLong);
  auto valid = torch::arange(11).unsqueeze(0) < lengths.unsqueeze(1);
  return {torch::randint(1, 30, {count, 11}, torch::kLong) * valid.to(torch::kLong), lengths};
}

// The fixtures' small model for `pe` (keys from `kv_source`), its weights drawn from `seed`.
Transformer seeded_model(const std::string& pe, int64_t seed,
                         const std::string& kv_source = "residual") {
  ModelConfig c = test_fixtures::small_model_config(pe, "padding");
  c.kv_source = kv_source;
  torch::manual_seed(seed);
  return Transformer(c, 30, 4, 11);
}

// Every parameter times 1.5, in place: the same addresses, other values.
void change_weights_in_place(Transformer& model) {
  torch::NoGradGuard no_grad;
  for (auto& p : model->parameters()) p.mul_(1.5);
}

}  // namespace

// Three batches (5, 5 and 2 sequences: the last one as an evaluation's short last batch) through
// one scope give the logits a model gives without it, to the bit, fp32 and bf16, for keys from
// the residual stream and from the embeddings, for MLA's projections and for absolute PEs.
TEST(PackedWeights, EvaluationLogitsAreTheSameBitsAsWithoutTheScope) {
  const std::vector<Batch> batches{random_batch(5, 1), random_batch(5, 2), random_batch(2, 3)};
  for (bool bf16 : precisions_here()) {
    const Bf16ProductsGuard guard(bf16);
    for (const std::string pe : {"rope", "alibi", "mla", "sinusoidal"}) {
      for (const std::string kv_source : {"residual", "embedding"}) {
        Transformer model = seeded_model(pe, 8, kv_source);
        model->eval();
        torch::NoGradGuard no_grad;
        std::vector<torch::Tensor> plain;
        for (const auto& b : batches) plain.push_back(model->forward(b.tokens, b.lengths));
        const PackedWeightsScope scope;
        for (size_t i = 0; i < batches.size(); ++i)
          EXPECT_TRUE(torch::equal(model->forward(batches[i].tokens, batches[i].lengths), plain[i]))
              << pe << " kv=" << kv_source << " bf16=" << bf16 << " batch " << i;
      }
    }
  }
}

// A weight changed after a scope ends is read afresh by the next scope, and a scope inside
// another uses the outer one's copies without ending them.
TEST(PackedWeights, NothingPreparedOutlivesTheScope) {
  const Batch batch = random_batch(4, 5);
  for (bool bf16 : precisions_here()) {
    const Bf16ProductsGuard guard(bf16);
    Transformer model = seeded_model("rope", 9);
    model->eval();
    torch::NoGradGuard no_grad;
    torch::Tensor before;
    {
      const PackedWeightsScope outer;
      before = model->forward(batch.tokens, batch.lengths);
      {
        const PackedWeightsScope inner;
        EXPECT_TRUE(torch::equal(model->forward(batch.tokens, batch.lengths), before));
      }
      EXPECT_TRUE(torch::equal(model->forward(batch.tokens, batch.lengths), before));
    }
    change_weights_in_place(model);
    const auto changed = model->forward(batch.tokens, batch.lengths);
    EXPECT_FALSE(torch::equal(changed, before)) << "bf16=" << bf16;
    const PackedWeightsScope scope;
    EXPECT_TRUE(torch::equal(model->forward(batch.tokens, batch.lengths), changed))
        << "bf16=" << bf16;
  }
}

// A product with a gradient reads the parameters as they are, even inside a scope whose
// inference passes prepared them before they changed (which the scope does not promise to
// handle for inference: the weights must stay as they are while it lives).
TEST(PackedWeights, ProductsWithAGradientReadTheWeightsAsTheyAre) {
  const Batch batch = random_batch(4, 6);
  for (bool bf16 : precisions_here()) {
    const Bf16ProductsGuard guard(bf16);
    // The reference: the same model with the changed weights, outside any scope.
    Transformer reference = seeded_model("alibi", 10);
    change_weights_in_place(reference);
    const auto expected = reference->forward(batch.tokens, batch.lengths);
    Transformer model = seeded_model("alibi", 10);
    const PackedWeightsScope scope;
    {
      torch::NoGradGuard no_grad;
      model->forward(batch.tokens, batch.lengths);  // prepares every weight
    }
    change_weights_in_place(model);
    const auto inside = model->forward(batch.tokens, batch.lengths);
    ASSERT_TRUE(inside.requires_grad());
    EXPECT_TRUE(torch::equal(inside, expected)) << "bf16=" << bf16;
  }
}

// Only what lives as long as the scope is prepared: a weight that is no parameter (made for one
// batch, say) is read as it is at every product, so changing it in place changes the result.
TEST(PackedWeights, ATensorMadeForOneBatchIsNotPrepared) {
  if (!onednn_available()) GTEST_SKIP() << "built without oneDNN";
  torch::manual_seed(11);
  const auto x = torch::randn({5, 8});
  auto weight = torch::randn({6, 8});  // requires no gradient: not a parameter
  for (bool bf16 : precisions_here()) {
    const Bf16ProductsGuard guard(bf16);
    torch::NoGradGuard no_grad;
    const PackedWeightsScope scope;
    const auto first = linear(x, weight, torch::Tensor());
    weight.mul_(2.0);
    const auto second = linear(x, weight, torch::Tensor());
    EXPECT_TRUE(torch::allclose(second, 2 * first, 1e-5, 1e-6)) << "bf16=" << bf16;
    weight.div_(2.0);
  }
}

// concatenated_weights: once per scope where no gradient is wanted (the same tensor for the same
// parts), torch::cat otherwise; its values are the concatenation's either way.
TEST(PackedWeights, ConcatenatedWeightsAreMadeOncePerScope) {
  torch::manual_seed(12);
  auto a = torch::randn({3, 4}, torch::requires_grad());
  auto b = torch::randn({2, 4}, torch::requires_grad());
  const auto expected = torch::cat({a, b}).detach();
  {
    const PackedWeightsScope scope;
    const auto with_gradient = concatenated_weights({a, b});
    EXPECT_TRUE(with_gradient.requires_grad());
    EXPECT_FALSE(with_gradient.is_same(concatenated_weights({a, b})));
    torch::NoGradGuard no_grad;
    const auto once = concatenated_weights({a, b});
    EXPECT_TRUE(torch::equal(once, expected));
    EXPECT_TRUE(once.is_same(concatenated_weights({a, b})));
    EXPECT_FALSE(once.is_same(concatenated_weights({b, a})));
  }
  torch::NoGradGuard no_grad;
  const auto outside = concatenated_weights({a, b});
  EXPECT_TRUE(torch::equal(outside, expected));
  EXPECT_FALSE(outside.is_same(concatenated_weights({a, b})));
}
