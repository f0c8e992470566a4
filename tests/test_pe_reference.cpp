// Every positional encoding against an independent reference: closed forms and plain
// double-precision loops written here, not the library's own helpers.
#include <gtest/gtest.h>

#include <cmath>
#include <complex>

#include "pe/alibi.h"
#include "pe/pe.h"
#include "pe/t5.h"

using namespace pelab;

namespace {

PositionalEncodingPtr build(const std::string& name, std::function<void(ModelConfig&)> edit = {}) {
  ModelConfig m;
  m.pe = name;
  m.d_model = 32;
  m.n_heads = 4;
  m.n_layers = 2;
  m.mla_rope_dim = 8;
  if (edit) edit(m);
  return make_pe(PeOptions{m, 40});
}

double logit(const torch::Tensor& q, const torch::Tensor& k, int64_t h, int64_t i, int64_t j) {
  return (q[0][h][i] * k[0][h][j]).sum().item<double>();
}

}  // namespace

TEST(Sinusoidal, TableMatchesDoubleLoop) {
  auto pe = build("sinusoidal");
  auto table = pe->embedding(40);
  ASSERT_EQ(table.sizes(), (std::vector<int64_t>{40, 32}));
  for (int pos : {0, 1, 7, 39})
    for (int i = 0; i < 16; ++i) {
      const double angle = pos / std::pow(10000.0, 2.0 * i / 32.0);
      EXPECT_NEAR(table[pos][2 * i].item<double>(), std::sin(angle), 1e-6);
      EXPECT_NEAR(table[pos][2 * i + 1].item<double>(), std::cos(angle), 1e-6);
    }
  EXPECT_EQ(pe->kind(), PeKind::kAbsolute);
}

TEST(Learned, TableIsATrainedParameter) {
  auto pe = build("learned");
  auto params = pe->named_parameters();
  ASSERT_TRUE(params.contains("table"));
  EXPECT_EQ(params["table"].sizes(), (std::vector<int64_t>{40, 32}));
  EXPECT_TRUE(torch::equal(pe->embedding(10), params["table"].narrow(0, 0, 10)));
}

TEST(Alibi, StandardSlopesClosedForm) {
  auto s8 = alibi_slopes(8, "standard");
  for (int h = 0; h < 8; ++h) EXPECT_DOUBLE_EQ(s8[h], std::pow(0.5, h + 1));
  auto s16 = alibi_slopes(16, "standard");
  for (int h = 0; h < 16; ++h) EXPECT_DOUBLE_EQ(s16[h], std::pow(2.0, -0.5 * (h + 1)));
  // H = 12: the 8 slopes of H = 8, then slopes 0, 2, 4, 6 of the H = 16 rule.
  auto s12 = alibi_slopes(12, "standard");
  ASSERT_EQ(s12.size(), 12u);
  for (int h = 0; h < 8; ++h) EXPECT_DOUBLE_EQ(s12[h], std::pow(0.5, h + 1));
  for (int e = 0; e < 4; ++e) EXPECT_DOUBLE_EQ(s12[8 + e], std::pow(2.0, -0.5 * (2 * e + 1)));
  auto paper = alibi_slopes(16, "paper");
  EXPECT_DOUBLE_EQ(paper[0], 1.0);
  EXPECT_NEAR(paper[15], std::exp(-15.0 / 16.0), 1e-15);
}

TEST(Alibi, BiasMatchesDoubleLoop) {
  for (const std::string rule : {"standard", "paper"}) {
    auto pe = build("alibi", [&](ModelConfig& m) { m.alibi_slopes = rule; });
    auto bias = pe->bias(9, 1);
    auto slopes = alibi_slopes(4, rule);
    for (int h = 0; h < 4; ++h)
      for (int i = 0; i < 9; ++i)
        for (int j = 0; j < 9; ++j)
          EXPECT_NEAR(bias[h][i][j].item<double>(), -slopes[h] * std::abs(i - j), 1e-6);
    EXPECT_TRUE(torch::allclose(pe->kernel(9, 0), bias.to(torch::kDouble), 1e-6, 1e-6));
  }
}

TEST(T5, KnownBucketValues) {
  // Hugging Face T5 defaults: 32 buckets, max_distance 128; relative_position = key - query.
  EXPECT_EQ(t5_relative_position_bucket(0, true, 32, 128), 0);
  EXPECT_EQ(t5_relative_position_bucket(-1, true, 32, 128), 1);
  EXPECT_EQ(t5_relative_position_bucket(1, true, 32, 128), 17);
  EXPECT_EQ(t5_relative_position_bucket(-7, true, 32, 128), 7);
  EXPECT_EQ(t5_relative_position_bucket(-8, true, 32, 128), 8);
  EXPECT_EQ(t5_relative_position_bucket(-20, true, 32, 128), 10);  // 8 + floor(8 ln 2.5 / ln 16)
  EXPECT_EQ(t5_relative_position_bucket(-200, true, 32, 128), 15);
  EXPECT_EQ(t5_relative_position_bucket(200, true, 32, 128), 31);
  // Causal: future keys share bucket 0; the past uses all 32 buckets.
  EXPECT_EQ(t5_relative_position_bucket(5, false, 32, 128), 0);
  EXPECT_EQ(t5_relative_position_bucket(-15, false, 32, 128), 15);
  EXPECT_EQ(t5_relative_position_bucket(-16, false, 32, 128), 16);
  EXPECT_EQ(t5_relative_position_bucket(-1000, false, 32, 128), 31);
}

TEST(T5, BiasIsTableLookupAndTrainable) {
  auto pe = build("t5", [](ModelConfig& m) {
    m.t5_num_buckets = 8;
    m.t5_max_distance = 16;
  });
  auto table = pe->named_parameters()["table"];
  ASSERT_EQ(table.sizes(), (std::vector<int64_t>{2, 4, 8}));
  {
    torch::NoGradGuard g;
    table.copy_(torch::randn(table.sizes()));
  }
  auto bias = pe->bias(12, 1);
  for (int h = 0; h < 4; ++h)
    for (int i = 0; i < 12; ++i)
      for (int j = 0; j < 12; ++j)
        EXPECT_EQ(bias[h][i][j].item<float>(),
                  table[1][h][t5_relative_position_bucket(j - i, true, 8, 16)].item<float>());
  bias.sum().backward();
  EXPECT_EQ(table.grad()[0].abs().sum().item<float>(), 0.0f);  // layer 0 not used
  EXPECT_GT(table.grad()[1].abs().sum().item<float>(), 0.0f);
}

TEST(Relative, OneScalarPerOffsetHeadAndLayer) {
  auto pe = build("relative");
  auto table = pe->named_parameters()["table"];
  ASSERT_EQ(table.sizes(), (std::vector<int64_t>{2, 4, 79}));
  {
    torch::NoGradGuard g;
    table.copy_(torch::randn(table.sizes()));
  }
  auto bias = pe->bias(10, 0);
  for (int h = 0; h < 4; ++h)
    for (int i = 0; i < 10; ++i)
      for (int j = 0; j < 10; ++j)
        EXPECT_EQ(bias[h][i][j].item<float>(), table[0][h][i - j + 39].item<float>());
  // Gradient reaches exactly the offsets that occur: (i - j) in [-9, 9].
  bias.sum().backward();
  auto used = table.grad()[0][0].ne(0).nonzero().flatten();
  EXPECT_EQ(used.numel(), 19);
  EXPECT_EQ(used.min().item<int64_t>(), 30);
  EXPECT_EQ(used.max().item<int64_t>(), 48);
  EXPECT_EQ(table.grad()[0][0][39].item<float>(), 10.0f);  // the diagonal occurs 10 times
}

// RoPE: rotated logits match the complex-number formula and depend only on i - j.
TEST(Rope, LogitsMatchComplexFormulaAndAreRelative) {
  auto pe = build("rope", [](ModelConfig& m) { m.rope_base = 100.0; });
  const int64_t L = 9, D = 8;
  auto q = torch::randn({1, 4, L, D}, torch::kDouble),
       k = torch::randn({1, 4, L, D}, torch::kDouble);
  auto pos = torch::arange(L, torch::kLong);
  auto [qr, kr] = pe->rotate(q, k, pos);
  auto [qs, ks] = pe->rotate(q, k, pos + 17);
  for (int64_t h : {0, 3})
    for (int64_t i = 0; i < L; ++i)
      for (int64_t j = 0; j < L; ++j) {
        std::complex<double> sum = 0;
        for (int64_t t = 0; t < D / 2; ++t) {
          const double theta = std::pow(100.0, -2.0 * t / D);
          std::complex<double> qc(q[0][h][i][2 * t].item<double>(),
                                  q[0][h][i][2 * t + 1].item<double>());
          std::complex<double> kc(k[0][h][j][2 * t].item<double>(),
                                  k[0][h][j][2 * t + 1].item<double>());
          sum += qc * std::conj(kc) * std::polar(1.0, double(i - j) * theta);
        }
        EXPECT_NEAR(logit(qr, kr, h, i, j), sum.real(), 1e-10);
        EXPECT_NEAR(logit(qs, ks, h, i, j), sum.real(), 1e-10);  // shifted positions, same logit
      }
}

TEST(Rope, PartialRotationLeavesOtherHeadsAndDimsUntouched) {
  auto pe = build("rope", [](ModelConfig& m) {
    m.rotary_heads = 1;
    m.rotary_fraction = 0.5;
  });
  auto q = torch::randn({2, 4, 6, 8}), k = torch::randn({2, 4, 6, 8});
  auto [qr, kr] = pe->rotate(q, k, torch::arange(6, torch::kLong));
  EXPECT_TRUE(torch::equal(qr.narrow(1, 1, 3), q.narrow(1, 1, 3)));  // heads 1..3: NoPE
  EXPECT_TRUE(torch::equal(kr.narrow(1, 1, 3), k.narrow(1, 1, 3)));
  auto head0 = qr.select(1, 0);
  EXPECT_TRUE(torch::equal(head0.narrow(-1, 4, 4), q.select(1, 0).narrow(-1, 4, 4)));  // dims 4..7
  EXPECT_FALSE(torch::allclose(head0.narrow(-1, 0, 4), q.select(1, 0).narrow(-1, 0, 4)));
  EXPECT_TRUE(torch::equal(head0[0][0], q[0][0][0]));  // position 0 never rotates
  EXPECT_EQ(pe->kernel(5, 0).size(0), 1);              // one rotated head
}

TEST(Rope, KernelIsUnitDiagonalPsdToeplitz) {
  for (const std::string name : {"rope", "rope_abs", "mla"}) {
    auto T = build(name)->kernel(24, 0)[0];
    for (int i = 0; i < 24; ++i) EXPECT_NEAR(T[i][i].item<double>(), 1.0, 1e-12) << name;
    for (int i = 1; i < 24; ++i)
      for (int j = 1; j < 24; ++j)
        EXPECT_NEAR(T[i][j].item<double>(), T[i - 1][j - 1].item<double>(), 1e-12) << name;
    EXPECT_TRUE(torch::allclose(T, T.t()));
    EXPECT_GT(torch::linalg::eigvalsh(T, "L").min().item<double>(), -1e-10) << name;
  }
}

TEST(RopeAbs, AddsSinusoidalAndRotates) {
  auto pe = build("rope_abs");
  EXPECT_TRUE(torch::allclose(pe->embedding(12), build("sinusoidal")->embedding(12)));
  auto q = torch::randn({1, 4, 5, 8}), k = torch::randn({1, 4, 5, 8});
  auto [a, b] = pe->rotate(q, k, torch::arange(5, torch::kLong));
  auto [c, d] = build("rope")->rotate(q, k, torch::arange(5, torch::kLong));
  EXPECT_TRUE(torch::equal(a, c));
  EXPECT_TRUE(torch::equal(b, d));
}

TEST(MlaPe, RotationIsRelativeAndNormPreserving) {
  auto pe = build("mla");
  auto q = torch::randn({1, 4, 7, 8}, torch::kDouble),
       k = torch::randn({1, 1, 7, 8}, torch::kDouble);
  auto pos = torch::arange(7, torch::kLong);
  auto [qa, ka] = pe->rotate(q, k, pos);
  auto [qb, kb] = pe->rotate(q, k, pos + 5);
  auto la = torch::matmul(qa, ka.transpose(-2, -1)), lb = torch::matmul(qb, kb.transpose(-2, -1));
  EXPECT_LT((la - lb).abs().max().item<double>(), 1e-10);
  EXPECT_TRUE(torch::allclose(qa.norm(2, -1), q.norm(2, -1)));
  EXPECT_EQ(pe->kind(), PeKind::kLatentAttention);
}

TEST(Registry, EveryPeBuildsAndUnknownNamesAreRefused) {
  for (const auto& name : pe_names()) EXPECT_EQ(build(name)->name(), name);
  EXPECT_EQ(pe_names().size(), 9u);
  try {
    build("rotary");
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("'rotary'"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("rope_abs"), std::string::npos);
  }
  EXPECT_THROW(build("t5", [](ModelConfig& m) { m.t5_num_buckets = 2; }), ConfigError);
}
