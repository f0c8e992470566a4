#include <gtest/gtest.h>

#include "model/mla.h"
#include "model/transformer.h"

using namespace pelab;

namespace {

const std::vector<std::string> kAllPes = pe_names();

ModelConfig small_model(const std::string& pe) {
  ModelConfig m;
  m.pe = pe;
  m.d_model = 16;
  m.n_heads = 2;
  m.n_layers = 2;
  m.d_ff = 24;
  m.dropout = 0;
  m.attention_dropout = 0;
  m.mla_kv_latent = 8;
  m.mla_q_latent = 8;
  m.mla_rope_dim = 4;
  return m;
}

torch::Tensor random_tokens(int64_t B, int64_t L, const torch::Tensor& lengths) {
  auto tokens = torch::randint(1, 30, {B, L}, torch::kLong);
  auto valid = torch::arange(L).unsqueeze(0) < lengths.unsqueeze(1);
  return tokens * valid.to(torch::kLong);
}

}  // namespace

TEST(Model, EveryPeGivesLogitsOfTheRightShapeAndGradients) {
  for (const auto& pe : kAllPes) {
    torch::manual_seed(0);
    Transformer model(small_model(pe), 30, 7, 12);
    auto lengths = torch::tensor({12, 5, 9}, torch::kLong);
    auto logits = model->forward(random_tokens(3, 12, lengths), lengths);
    ASSERT_EQ(logits.sizes(), (std::vector<int64_t>{3, 7})) << pe;
    logits.sum().backward();
    for (const auto& p : model->named_parameters())
      ASSERT_TRUE(p.value().grad().defined()) << pe << " " << p.key();
  }
}

// With the padding mask and pooling over valid positions, extra right padding changes nothing:
// pads are neither attended to nor pooled, and valid tokens keep their positions.
TEST(Model, PaddingMaskMakesRightPaddingInvisible) {
  for (const auto& pe : kAllPes) {
    torch::manual_seed(1);
    Transformer model(small_model(pe), 30, 5, 20);
    model->eval();
    auto lengths = torch::tensor({8, 5}, torch::kLong);
    auto tokens = random_tokens(2, 8, lengths);
    auto padded = torch::cat({tokens, torch::zeros({2, 7}, torch::kLong)}, 1);
    auto a = model->forward(tokens, lengths);
    auto b = model->forward(padded, lengths);
    EXPECT_TRUE(torch::allclose(a, b, 1e-5, 1e-5)) << pe;
  }
}

// Without the padding mask the authors' model sees pads, so padding changes the output.
TEST(Model, NoMaskLetsPadsLeakIn) {
  auto m = small_model("rope");
  m.mask = "none";
  m.pooling = "all";
  torch::manual_seed(1);
  Transformer model(m, 30, 5, 20);
  model->eval();
  auto lengths = torch::tensor({5}, torch::kLong);
  auto tokens = random_tokens(1, 8, lengths);
  auto padded = torch::cat({tokens, torch::zeros({1, 7}, torch::kLong)}, 1);
  EXPECT_FALSE(torch::allclose(model->forward(tokens, lengths), model->forward(padded, lengths),
                               1e-4, 1e-4));
}

TEST(Model, CausalMaskGivesZeroWeightToLaterKeys) {
  auto m = small_model("alibi");
  m.mask = "causal";
  Transformer model(m, 30, 5, 10);
  model->eval();
  auto lengths = torch::tensor({10}, torch::kLong);
  std::vector<AttentionRecord> records;
  ForwardOptions options;
  options.attention_records = &records;
  model->forward(random_tokens(1, 10, lengths), lengths, options);
  ASSERT_EQ(records.size(), 2u);
  auto upper = records[0].probabilities.triu(1);
  EXPECT_EQ(upper.abs().max().item<float>(), 0.0f);
  EXPECT_GT(records[0].probabilities[0][0][9][9].item<float>(), 0.0f);
}

// PAPER.md 5.8: with no mask, no PE and pooling over all positions the model is permutation
// invariant, so NoPE cannot read position at all in the authors' setup.
TEST(Model, AuthorsNopeIsPermutationInvariant) {
  auto m = small_model("nope");
  m.mask = "none";
  m.pooling = "all";
  m.kv_source = "embedding";
  torch::manual_seed(3);
  Transformer model(m, 30, 5, 10);
  model->eval();
  auto lengths = torch::tensor({10}, torch::kLong);
  auto tokens = random_tokens(1, 10, lengths);
  auto permuted = tokens.index_select(1, torch::randperm(10, torch::kLong));
  EXPECT_TRUE(torch::allclose(model->forward(tokens, lengths), model->forward(permuted, lengths),
                              1e-5, 1e-5));
}

TEST(Model, KeysFromEmbeddingsDifferFromResidual) {
  auto m = small_model("rope");
  torch::manual_seed(4);
  Transformer residual(m, 30, 5, 10);
  m.kv_source = "embedding";
  torch::manual_seed(4);
  Transformer embedding(m, 30, 5, 10);
  residual->eval();
  embedding->eval();
  auto lengths = torch::tensor({10}, torch::kLong);
  auto tokens = random_tokens(1, 10, lengths);
  EXPECT_FALSE(torch::allclose(residual->forward(tokens, lengths),
                               embedding->forward(tokens, lengths), 1e-5, 1e-5));
}

// DeepSeek-V2 MLA: W_DKV [d_c, d], W_UK and W_UV [H*d_h, d_c], W_KR [d_R, d] shared by all heads,
// W_DQ [d_c', d], W_UQ [H*d_h, d_c'], W_QR [H*d_R, d_c'] (or [d_R, d_c'] when shared).
TEST(Mla, ShapesMatchDeepSeek) {
  ModelConfig m = small_model("mla");
  m.d_model = 32;
  m.n_heads = 4;
  m.mla_kv_latent = 12;
  m.mla_q_latent = 10;
  m.mla_rope_dim = 6;
  auto pe = make_pe(PeOptions{m, 16});
  LatentAttention attention(m, pe);
  using V = std::vector<int64_t>;
  EXPECT_EQ(attention.kv_down->weight.sizes(), (V{12, 32}));
  EXPECT_EQ(attention.key_up->weight.sizes(), (V{32, 12}));
  EXPECT_EQ(attention.value_up->weight.sizes(), (V{32, 12}));
  EXPECT_EQ(attention.key_rope->weight.sizes(), (V{6, 32}));
  EXPECT_EQ(attention.query_down->weight.sizes(), (V{10, 32}));
  EXPECT_EQ(attention.query_up->weight.sizes(), (V{32, 10}));
  EXPECT_EQ(attention.query_rope->weight.sizes(), (V{24, 10}));
  EXPECT_EQ(attention.output->weight.sizes(), (V{32, 32}));
  m.mla_shared_rotary_query = true;
  m.mla_q_latent = 0;
  LatentAttention shared(m, pe);
  EXPECT_EQ(shared.query_rope->weight.sizes(), (V{6, 32}));
  EXPECT_TRUE(shared.query_down.is_empty());
}

// The logits of the MLA and RoPE attention blocks depend on positions only through i - j.
TEST(Mla, LogitsAreRelative) {
  for (const std::string pe_name : {"mla", "rope"}) {
    ModelConfig m = small_model(pe_name);
    auto pe = make_pe(PeOptions{m, 64});
    std::shared_ptr<AttentionBlock> block;
    if (pe_name == "mla")
      block = std::make_shared<LatentAttention>(m, pe);
    else
      block = std::make_shared<MultiHeadAttention>(m, pe);
    block->to(torch::kDouble);
    block->eval();
    auto x = torch::randn({2, 7, m.d_model}, torch::kDouble);
    AttentionRecord a, b;
    AttentionInputs in;
    in.queries_from = x;
    in.keys_from = x;
    in.positions = torch::arange(7, torch::kLong);
    in.record = &a;
    block->forward(in);
    in.positions = torch::arange(7, torch::kLong) + 23;
    in.record = &b;
    block->forward(in);
    EXPECT_LT((a.logits - b.logits).abs().max().item<double>(), 1e-10) << pe_name;
    in.positions = torch::arange(7, torch::kLong) * 2;  // not a shift: logits must change
    block->forward(in);
    EXPECT_GT((a.logits - b.logits).abs().max().item<double>(), 1e-6) << pe_name;
  }
}

// Back-propagation through the whole model against central finite differences in double.
TEST(Model, GradientsMatchFiniteDifferences) {
  for (const std::string pe : {"relative", "mla", "rope_abs"}) {
    torch::manual_seed(5);
    Transformer model(small_model(pe), 30, 5, 8);
    model->to(torch::kDouble);
    auto lengths = torch::tensor({8, 6}, torch::kLong);
    auto tokens = random_tokens(2, 8, lengths);
    auto labels = torch::tensor({1, 3}, torch::kLong);
    auto loss_of = [&] {
      return torch::nn::functional::cross_entropy(model->forward(tokens, lengths), labels);
    };
    model->zero_grad();
    loss_of().backward();
    torch::NoGradGuard no_grad;
    int checked = 0;
    for (auto& p : model->named_parameters()) {
      auto flat = p.value().view(-1);
      auto grad = p.value().grad().view(-1);
      for (int64_t idx : {int64_t{0}, flat.numel() / 2, flat.numel() - 1}) {
        const double original = flat[idx].item<double>();
        const double h = 1e-6;
        flat[idx] = original + h;
        const double up = loss_of().item<double>();
        flat[idx] = original - h;
        const double down = loss_of().item<double>();
        flat[idx] = original;
        const double numeric = (up - down) / (2 * h);
        EXPECT_NEAR(grad[idx].item<double>(), numeric, 1e-6 + 1e-4 * std::abs(numeric))
            << pe << " " << p.key() << "[" << idx << "]";
        ++checked;
      }
    }
    EXPECT_GT(checked, 30);
  }
}
