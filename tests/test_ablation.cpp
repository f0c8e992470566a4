#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "analysis/ablation.h"
#include "fixtures.h"
#include "report/heatmap.h"
#include "train/trainer.h"

using namespace pelab;

namespace {

struct Fixture {
  Transformer model{nullptr};
  Dataset data;
};

Fixture trained(const std::string& pe) {
  auto t = test_fixtures::briefly_trained(pe);
  return {t.model, t.data};
}

}  // namespace

TEST(Ablation, BatchedEqualsOneByOneForEveryMethod) {
  for (const std::string pe : {"rope", "mla", "alibi"}) {
    Fixture f = trained(pe);
    for (auto method : {AblationMethod::kValue, AblationMethod::kOutput, AblationMethod::kMean}) {
      auto fast = ablate_heads(f.model, f.data, method, 40);
      auto slow = ablate_heads_one_by_one(f.model, f.data, method, 40);
      EXPECT_EQ(fast.baseline_accuracy, slow.baseline_accuracy);
      EXPECT_TRUE(torch::equal(fast.accuracy, slow.accuracy))
          << pe << " " << ablation_method_name(method) << "\n"
          << fast.accuracy << "\n"
          << slow.accuracy;
    }
  }
}

// The batched path implements `value` as removing the head's output; zeroing the head's rows of
// the value projection by hand must give the same logits.
TEST(Ablation, ValueAblationEqualsZeroingTheWeightsByHand) {
  Fixture f = trained("rope");
  f.model->eval();
  torch::NoGradGuard no_grad;
  const int64_t layer = 1, head = 2, head_dim = 8;
  auto intact = f.model->forward(f.data.tokens, f.data.lengths);
  ForwardState s = f.model->begin(f.data.tokens, f.data.lengths);
  for (int64_t l = 0; l < 2; ++l) {
    torch::Tensor gate;
    if (l == layer) {
      gate = torch::ones({f.data.size(), 4});
      gate.select(1, head).zero_();
    }
    f.model->run_block(s, l, gate);
  }
  auto gated = f.model->finish(s);
  auto& attention = *f.model->blocks[layer]->as<Block>()->attention;
  auto params = attention.named_parameters();
  params["value.weight"].narrow(0, head * head_dim, head_dim).zero_();
  params["value.bias"].narrow(0, head * head_dim, head_dim).zero_();
  auto zeroed = f.model->forward(f.data.tokens, f.data.lengths);
  EXPECT_TRUE(torch::allclose(gated, zeroed, 1e-5, 1e-5));
  EXPECT_FALSE(torch::allclose(gated, intact, 1e-5, 1e-5));  // the ablation did something
}

TEST(Ablation, DepositRule) {
  // Layer 0: one head carries the loss; layer 1: spread over heads; layer 2: nothing.
  auto accuracy = torch::tensor(
      {{0.9, 0.4, 0.88, 0.9}, {0.7, 0.7, 0.72, 0.9}, {0.9, 0.9, 0.9, 0.9}}, torch::kDouble);
  auto d = summarise_deposits(0.9, accuracy);
  ASSERT_EQ(d.size(), 3u);
  EXPECT_EQ(d[0].worst_head, 1);
  EXPECT_NEAR(d[0].drop, 0.5, 1e-12);
  EXPECT_NEAR(d[0].share, 0.5 / 0.52, 1e-12);
  EXPECT_TRUE(d[0].single_head_deposit);
  EXPECT_FALSE(d[1].single_head_deposit);
  EXPECT_FALSE(d[2].single_head_deposit);
  EXPECT_EQ(d[2].share, 0.0);
  AblationResult r;
  r.baseline_accuracy = 0.9;
  r.accuracy = accuracy;
  r.deposits = d;
  r.samples = 10;
  auto j = ablation_to_json(r, "test");
  EXPECT_EQ(j["accuracy"].size(), 3u);
  EXPECT_EQ(j["deposits"][0]["worst_head"], 1);
}

TEST(Ablation, UnknownMethodIsRefused) { EXPECT_THROW(parse_ablation_method("zero"), ConfigError); }

TEST(Heatmap, WritesAnSvgWithEveryCellValue) {
  const std::filesystem::path svg = ::testing::TempDir() + "/pelab_heatmap.svg";
  std::filesystem::remove(svg);
  auto m = torch::tensor({{0.125, 0.5}, {0.75, 0.875}, {0.25, 0.375}}, torch::kDouble);
  write_heatmap_svg(svg, m, {"Title's test", "head", "layer", "accuracy"});
  std::ifstream in(svg);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("<svg"), std::string::npos);
  for (const char* label : {"0.12", "0.50", "0.75", "0.88", "0.25", "0.38"})
    EXPECT_NE(text.find(label), std::string::npos) << label;
  EXPECT_FALSE(std::filesystem::exists(svg.string() + ".tmp"));
  EXPECT_THROW(write_heatmap_svg("/nonexistent_dir/x.svg", m, {}), std::runtime_error);
}
