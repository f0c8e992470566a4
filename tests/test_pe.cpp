// Positional encodings other than the RoPE family (test_pe_rope.cpp), each against an independent
// reference: closed forms, known values and plain double-precision loops written here.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>

#include "pe/alibi.h"
#include "pe/pe.h"
#include "pe/t5.h"
#include "pe_fixture.h"

using namespace pelab;

using pelab::test_fixtures::kPeMaxLen;
using pelab::test_fixtures::small_pe;

namespace {

torch::Tensor param(const PositionalEncodingPtr& pe, const std::string& name) {
  auto params = pe->named_parameters();
  EXPECT_TRUE(params.contains(name)) << pe->name() << " has no parameter " << name;
  return params[name];
}

void randomize(torch::Tensor t) {
  torch::NoGradGuard g;
  t.copy_(torch::randn(t.sizes()));
}

// The ALiBi repository's get_slopes, transcribed: start * ratio^i with start = ratio =
// 2^(-2^-(log2 n - 3)); other head counts recurse on the next power of two.
std::vector<double> alibi_repo_slopes(int64_t n) {
  auto power_of_2 = [](int64_t m) {
    const double start = std::pow(2.0, -std::pow(2.0, -(std::log2(double(m)) - 3)));
    std::vector<double> s;
    for (int64_t i = 0; i < m; ++i) s.push_back(start * std::pow(start, double(i)));
    return s;
  };
  const double lg = std::log2(double(n));
  if (lg == std::floor(lg)) return power_of_2(n);
  const int64_t closest = int64_t(1) << int64_t(std::floor(lg));
  auto s = power_of_2(closest);
  auto extra = alibi_repo_slopes(2 * closest);
  for (int64_t i = 0; i < 2 * (n - closest); i += 2) s.push_back(extra[i]);
  return s;
}

// Hugging Face T5Attention._relative_position_bucket, op for op with float32 tensors.
torch::Tensor hf_t5_bucket(torch::Tensor relative_position, bool bidirectional, int64_t num_buckets,
                           int64_t max_distance) {
  auto relative_buckets = torch::zeros_like(relative_position);
  if (bidirectional) {
    num_buckets /= 2;
    relative_buckets += (relative_position > 0).to(torch::kLong) * num_buckets;
    relative_position = torch::abs(relative_position);
  } else {
    relative_position = -torch::min(relative_position, torch::zeros_like(relative_position));
  }
  const int64_t max_exact = num_buckets / 2;
  auto is_small = relative_position < max_exact;
  auto large = max_exact + (torch::log(relative_position.to(torch::kFloat) / max_exact) /
                            std::log(double(max_distance) / max_exact) * (num_buckets - max_exact))
                               .to(torch::kLong);
  large = torch::min(large, torch::full_like(large, num_buckets - 1));
  return relative_buckets + torch::where(is_small, relative_position, large);
}

}  // namespace

TEST(PeInterface, NopeAddsNothingAndKindsHaveNames) {
  auto pe = small_pe("nope");
  EXPECT_EQ(pe->kind(), PeKind::kNone);
  EXPECT_FALSE(pe->embedding(5).defined());
  EXPECT_FALSE(pe->bias(5, 0).defined());
  EXPECT_FALSE(pe->kernel(5, 0).defined());
  EXPECT_TRUE(pe->parameters().empty());
  auto q = torch::randn({1, 4, 5, 8}), k = torch::randn({1, 4, 5, 8});
  auto [q2, k2] = pe->rotate(q, k, torch::arange(5, torch::kLong));
  EXPECT_TRUE(q2.is_same(q));
  EXPECT_TRUE(k2.is_same(k));
  EXPECT_STREQ(pe_kind_name(PeKind::kNone), "none");
  EXPECT_STREQ(pe_kind_name(PeKind::kRotaryAbsolute), "rotary+absolute");
}

TEST(Registry, EveryPeBuildsWithItsListedKind) {
  const std::vector<std::string> expected = {"nope",  "sinusoidal", "learned",  "relative", "t5",
                                             "alibi", "rope",       "rope_abs", "mla",      "xpos",
                                             "prope", "kerple",     "fire",     "cope"};
  EXPECT_EQ(pe_names(), expected);
  ASSERT_EQ(pe_list().size(), expected.size());
  for (const auto& info : pe_list()) {
    auto pe = small_pe(info.name);
    EXPECT_EQ(pe->name(), info.name);
    EXPECT_EQ(pe->kind(), info.kind) << info.name;
    EXPECT_FALSE(info.summary.empty());
  }
}

TEST(Registry, UnknownNameNamesItAndTheAcceptedList) {
  try {
    small_pe("rotary");
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("model.pe"), std::string::npos) << msg;
    EXPECT_NE(msg.find("'rotary'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("nope, sinusoidal, learned, relative, t5, alibi, rope, rope_abs, mla"),
              std::string::npos)
        << msg;
  }
}

TEST(Registry, BadOptionsAreConfigErrorsNamingTheKey) {
  auto expect_error = [](const std::string& pe, std::function<void(ModelConfig&)> edit,
                         const std::string& key) {
    try {
      small_pe(pe, edit);
      ADD_FAILURE() << pe << ": no error for " << key;
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(key), std::string::npos) << e.what();
    }
  };
  expect_error(
      "t5", [](ModelConfig& m) { m.t5_num_buckets = 2; }, "model.t5_num_buckets");
  expect_error(
      "t5", [](ModelConfig& m) { m.t5_num_buckets = 33; }, "model.t5_num_buckets");
  expect_error(
      "t5", [](ModelConfig& m) { m.t5_max_distance = 8; }, "model.t5_max_distance");
  expect_error(
      "alibi", [](ModelConfig& m) { m.alibi_slopes = "steep"; }, "model.alibi_slopes");
  expect_error(
      "rope", [](ModelConfig& m) { m.rotary_heads = 5; }, "model.rotary_heads");
  expect_error(
      "rope_abs", [](ModelConfig& m) { m.rotary_heads = -2; }, "model.rotary_heads");
  expect_error(
      "rope", [](ModelConfig& m) { m.rotary_fraction = 0.1; }, "model.rotary_fraction");
  expect_error(
      "rope", [](ModelConfig& m) { m.rotary_fraction = 1.5; }, "model.rotary_fraction");
  expect_error(
      "mla", [](ModelConfig& m) { m.mla_rope_dim = 7; }, "model.mla_rope_dim");
  expect_error(
      "mla", [](ModelConfig& m) { m.mla_rope_dim = 0; }, "model.mla_rope_dim");
  expect_error(
      "kerple", [](ModelConfig& m) { m.kerple_variant = "cubic"; }, "model.kerple_variant");
  expect_error(
      "fire", [](ModelConfig& m) { m.fire_c = 0; }, "model.fire_c");
  expect_error(
      "fire", [](ModelConfig& m) { m.fire_length = 0.5; }, "model.fire_length");
  expect_error(
      "cope", [](ModelConfig& m) { m.cope_positions = 1; }, "model.cope_positions");
  expect_error(
      "xpos", [](ModelConfig& m) { m.rope_scaling = "cubic"; }, "model.rope_scaling");
  expect_error(
      "prope", [](ModelConfig& m) { m.rope_scaling_factor = 0.5; }, "model.rope_scaling_factor");
  // Causal T5 has no direction split: an odd count is fine there.
  EXPECT_NO_THROW(small_pe("t5", [](ModelConfig& m) {
    m.t5_num_buckets = 33;
    m.mask = "causal";
  }));
}

TEST(Sinusoidal, TableAndKernelMatchDoubleLoops) {
  auto pe = small_pe("sinusoidal", [](ModelConfig& m) { m.sinusoidal_base = 500.0; });
  EXPECT_EQ(pe->kind(), PeKind::kAbsolute);
  EXPECT_TRUE(pe->parameters().empty());
  auto table = pe->embedding(kPeMaxLen);
  ASSERT_EQ(table.sizes(), (std::vector<int64_t>{kPeMaxLen, 32}));
  std::vector<std::vector<double>> P(kPeMaxLen, std::vector<double>(32));
  for (int pos = 0; pos < kPeMaxLen; ++pos)
    for (int i = 0; i < 16; ++i) {
      const double angle = pos / std::pow(500.0, 2.0 * i / 32.0);
      P[pos][2 * i] = std::sin(angle);
      P[pos][2 * i + 1] = std::cos(angle);
    }
  for (int pos = 0; pos < kPeMaxLen; ++pos)
    for (int c = 0; c < 32; ++c) EXPECT_NEAR(table[pos][c].item<double>(), P[pos][c], 1e-6);
  EXPECT_TRUE(torch::equal(pe->embedding(7), table.narrow(0, 0, 7)));
  const int n = 12;
  auto G = pe->kernel(n, 0);
  ASSERT_EQ(G.sizes(), (std::vector<int64_t>{1, n, n}));
  EXPECT_EQ(G.scalar_type(), torch::kDouble);
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j) {
      double dot = 0;
      for (int c = 0; c < 32; ++c) dot += P[i][c] * P[j][c];
      EXPECT_NEAR(G[0][i][j].item<double>(), dot, 1e-12);
    }
}

TEST(Learned, TableIsATrainedParameterAndEmbeddingIsItsFirstRows) {
  auto pe = small_pe("learned");
  EXPECT_EQ(pe->kind(), PeKind::kAbsolute);
  auto table = param(pe, "table");
  ASSERT_EQ(table.sizes(), (std::vector<int64_t>{kPeMaxLen, 32}));
  EXPECT_TRUE(table.requires_grad());
  EXPECT_NEAR(table.std().item<double>(), 0.02, 0.003);  // N(0, 0.02^2) init
  EXPECT_NEAR(table.mean().item<double>(), 0.0, 0.003);
  auto e = pe->embedding(10);
  EXPECT_TRUE(torch::equal(e, table.narrow(0, 0, 10)));
  e.sum().backward();
  EXPECT_EQ(table.grad().narrow(0, 0, 10).eq(1).all().item<bool>(), true);
  EXPECT_EQ(table.grad().narrow(0, 10, kPeMaxLen - 10).abs().sum().item<float>(), 0.0f);
  auto G = pe->kernel(6, 0);
  auto p = table.detach().narrow(0, 0, 6).to(torch::kDouble);
  for (int i = 0; i < 6; ++i)
    for (int j = 0; j < 6; ++j)
      EXPECT_NEAR(G[0][i][j].item<double>(), (p[i] * p[j]).sum().item<double>(), 1e-12);
}

TEST(Alibi, StandardSlopesMatchTheClosedFormAndTheReferenceRule) {
  auto s8 = alibi_slopes(8, "standard");
  ASSERT_EQ(s8.size(), 8u);
  for (int h = 0; h < 8; ++h) EXPECT_DOUBLE_EQ(s8[h], 1.0 / double(2 << h));  // 1/2 .. 1/256
  auto s16 = alibi_slopes(16, "standard");
  for (int h = 0; h < 16; ++h) EXPECT_DOUBLE_EQ(s16[h], std::pow(2.0, -0.5 * (h + 1)));
  // H = 12, as the ALiBi repository lists it: slopes(8) then slopes(16)[0::2][:4].
  const std::vector<double> known12 = {0.5,
                                       0.25,
                                       0.125,
                                       0.0625,
                                       0.03125,
                                       0.015625,
                                       0.0078125,
                                       0.00390625,
                                       0.7071067811865476,
                                       0.35355339059327373,
                                       0.17677669529663687,
                                       0.08838834764831843};
  auto s12 = alibi_slopes(12, "standard");
  ASSERT_EQ(s12.size(), 12u);
  for (int h = 0; h < 12; ++h) EXPECT_NEAR(s12[h], known12[h], 1e-15) << h;
  for (int64_t H : {1, 2, 3, 5, 6, 7, 8, 12, 16, 20, 24, 32}) {
    auto ours = alibi_slopes(H, "standard");
    auto ref = alibi_repo_slopes(H);
    ASSERT_EQ(ours.size(), ref.size()) << H;
    for (int64_t h = 0; h < H; ++h) EXPECT_NEAR(ours[h], ref[h], 1e-14 * ref[h]) << H << " " << h;
  }
}

TEST(Alibi, PaperSlopesAreExpMinusHOverH) {
  auto paper = alibi_slopes(16, "paper");
  ASSERT_EQ(paper.size(), 16u);
  for (int h = 0; h < 16; ++h) EXPECT_DOUBLE_EQ(paper[h], std::exp(-h / 16.0));
  EXPECT_DOUBLE_EQ(paper[0], 1.0);
  EXPECT_NEAR(paper[15], 0.3916, 1e-4);
}

TEST(Alibi, BiasMatchesDoubleLoopInEveryLayer) {
  for (const std::string rule : {"standard", "paper"}) {
    auto pe = small_pe("alibi", [&](ModelConfig& m) { m.alibi_slopes = rule; });
    EXPECT_EQ(pe->kind(), PeKind::kBias);
    EXPECT_TRUE(pe->parameters().empty());
    auto slopes = alibi_slopes(4, rule);
    for (int64_t layer : {0, 1}) {
      auto bias = pe->bias(9, layer);
      ASSERT_EQ(bias.sizes(), (std::vector<int64_t>{4, 9, 9}));
      for (int h = 0; h < 4; ++h)
        for (int i = 0; i < 9; ++i)
          for (int j = 0; j < 9; ++j)
            EXPECT_NEAR(bias[h][i][j].item<double>(), -slopes[h] * std::abs(i - j), 1e-6);
    }
    auto K = pe->kernel(11, 1);
    ASSERT_EQ(K.sizes(), (std::vector<int64_t>{4, 11, 11}));
    for (int h = 0; h < 4; ++h)
      for (int i = 0; i < 11; ++i)
        for (int j = 0; j < 11; ++j)
          EXPECT_DOUBLE_EQ(K[h][i][j].item<double>(), -slopes[h] * std::abs(i - j));
    EXPECT_EQ(pe->bias(5, 0).size(1), 5);  // a new length after a cached one
  }
}

TEST(T5, KnownBucketValues) {
  // Hugging Face defaults: 32 buckets, max_distance 128; relative_position = key - query.
  EXPECT_EQ(t5_relative_position_bucket(0, true, 32, 128), 0);
  EXPECT_EQ(t5_relative_position_bucket(-1, true, 32, 128), 1);
  EXPECT_EQ(t5_relative_position_bucket(1, true, 32, 128), 17);
  EXPECT_EQ(t5_relative_position_bucket(-7, true, 32, 128), 7);
  EXPECT_EQ(t5_relative_position_bucket(-8, true, 32, 128), 8);
  EXPECT_EQ(t5_relative_position_bucket(-15, true, 32, 128), 9);
  EXPECT_EQ(t5_relative_position_bucket(-16, true, 32, 128), 10);
  EXPECT_EQ(t5_relative_position_bucket(-20, true, 32, 128), 10);  // 8 + floor(8 ln 2.5 / ln 16)
  EXPECT_EQ(t5_relative_position_bucket(-127, true, 32, 128), 15);
  EXPECT_EQ(t5_relative_position_bucket(-200, true, 32, 128), 15);
  EXPECT_EQ(t5_relative_position_bucket(8, true, 32, 128), 24);
  EXPECT_EQ(t5_relative_position_bucket(200, true, 32, 128), 31);
  // Causal: future keys share bucket 0; the past uses all 32 buckets.
  EXPECT_EQ(t5_relative_position_bucket(1, false, 32, 128), 0);
  EXPECT_EQ(t5_relative_position_bucket(200, false, 32, 128), 0);
  EXPECT_EQ(t5_relative_position_bucket(-1, false, 32, 128), 1);
  EXPECT_EQ(t5_relative_position_bucket(-15, false, 32, 128), 15);
  EXPECT_EQ(t5_relative_position_bucket(-16, false, 32, 128), 16);
  EXPECT_EQ(t5_relative_position_bucket(-1000, false, 32, 128), 31);
}

TEST(T5, BucketsMatchTheHuggingFaceTensorCode) {
  auto rel = torch::arange(-300, 301, torch::kLong);
  for (bool bidirectional : {true, false})
    for (auto [buckets, distance] : std::vector<std::pair<int64_t, int64_t>>{
             {32, 128}, {8, 16}, {64, 100}, {16, 50}, {4, 3}}) {
      auto ref = hf_t5_bucket(rel, bidirectional, buckets, distance);
      for (int64_t r = -300; r <= 300; ++r)
        ASSERT_EQ(t5_relative_position_bucket(r, bidirectional, buckets, distance),
                  ref[r + 300].item<int64_t>())
            << "r=" << r << " bidirectional=" << bidirectional << " buckets=" << buckets
            << " max_distance=" << distance;
    }
}

TEST(T5, BiasIsTableLookupAndTrainable) {
  for (const std::string mask : {"padding", "causal"}) {
    auto pe = small_pe("t5", [&](ModelConfig& m) {
      m.t5_num_buckets = 8;
      m.t5_max_distance = 16;
      m.mask = mask;
    });
    EXPECT_EQ(pe->kind(), PeKind::kBias);
    auto table = param(pe, "table");
    ASSERT_EQ(table.sizes(), (std::vector<int64_t>{2, 4, 8}));
    EXPECT_EQ(table.abs().sum().item<float>(), 0.0f);  // zero init
    randomize(table);
    const bool bidirectional = mask != "causal";
    auto bias = pe->bias(12, 1);
    ASSERT_EQ(bias.sizes(), (std::vector<int64_t>{4, 12, 12}));
    for (int h = 0; h < 4; ++h)
      for (int i = 0; i < 12; ++i)
        for (int j = 0; j < 12; ++j)
          EXPECT_EQ(
              bias[h][i][j].item<float>(),
              table[1][h][t5_relative_position_bucket(j - i, bidirectional, 8, 16)].item<float>());
    EXPECT_TRUE(torch::allclose(pe->kernel(12, 1), bias.detach().to(torch::kDouble)));
    bias.sum().backward();
    EXPECT_EQ(table.grad()[0].abs().sum().item<float>(), 0.0f);  // layer 0 not used
    EXPECT_EQ(table.grad()[1].sum().item<float>(), 4.0f * 144.0f);
  }
}

TEST(Relative, OneScalarPerOffsetHeadAndLayer) {
  auto pe = small_pe("relative");
  EXPECT_EQ(pe->kind(), PeKind::kBias);
  auto table = param(pe, "table");
  ASSERT_EQ(table.sizes(), (std::vector<int64_t>{2, 4, 2 * kPeMaxLen - 1}));
  EXPECT_EQ(table.abs().sum().item<float>(), 0.0f);  // zero init
  randomize(table);
  const int L = 10;
  for (int64_t layer : {0, 1}) {
    auto bias = pe->bias(L, layer);
    ASSERT_EQ(bias.sizes(), (std::vector<int64_t>{4, L, L}));
    for (int h = 0; h < 4; ++h)
      for (int i = 0; i < L; ++i)
        for (int j = 0; j < L; ++j)
          EXPECT_EQ(bias[h][i][j].item<float>(),
                    table[layer][h][i - j + kPeMaxLen - 1].item<float>());
    EXPECT_TRUE(torch::allclose(pe->kernel(L, layer), bias.detach().to(torch::kDouble)));
    EXPECT_EQ(pe->kernel(L, layer).scalar_type(), torch::kDouble);
  }
  // d/dtable of sum(W o bias) = sum of W over the (i, j) with that offset, computed by a loop.
  auto W = torch::randn({4, L, L}, torch::kDouble);
  (pe->bias(L, 0).to(torch::kDouble) * W).sum().backward();
  auto grad = table.grad().to(torch::kDouble);
  for (int h = 0; h < 4; ++h)
    for (int o = 0; o < 2 * kPeMaxLen - 1; ++o) {
      double expected = 0;
      for (int i = 0; i < L; ++i)
        for (int j = 0; j < L; ++j)
          if (i - j + kPeMaxLen - 1 == o) expected += W[h][i][j].item<double>();
      EXPECT_NEAR(grad[0][h][o].item<double>(), expected, 1e-5) << h << " " << o;
    }
  EXPECT_EQ(grad[1].abs().sum().item<double>(), 0.0);  // layer 1 not used
  auto used = grad[0][0].ne(0).nonzero().flatten();    // offsets -9..9 only
  EXPECT_EQ(used.numel(), 2 * L - 1);
  EXPECT_EQ(used.min().item<int64_t>(), kPeMaxLen - L);
  EXPECT_EQ(used.max().item<int64_t>(), kPeMaxLen + L - 2);
}
