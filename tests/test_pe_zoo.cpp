// The PE zoo (xpos, prope, kerple, fire, cope), RoPE context scaling and randomized positions,
// each against an independent reference written here as double-precision loops or closed forms.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <complex>
#include <functional>
#include <limits>
#include <numbers>

#include "model/attention.h"
#include "model/transformer.h"
#include "pe/pe.h"
#include "pe_fixture.h"
#include "train/eval_overrides.h"

using namespace pelab;

using pelab::test_fixtures::head_logit;
using pelab::test_fixtures::kPeMaxLen;
using pelab::test_fixtures::small_pe;

namespace {

// Re sum_t q^(t) conj(k^(t)) e^{i (i - j) theta_t} g_t(i - j) for unrotated q (position i) and k
// (position j), theta_t and the per-pair factor g_t given.
double complex_logit(const torch::Tensor& q, const torch::Tensor& k, int64_t h, int64_t i,
                     int64_t j, const std::vector<double>& theta,
                     std::function<double(int64_t t, double offset)> factor) {
  std::complex<double> sum = 0;
  for (int64_t t = 0; t < int64_t(theta.size()); ++t) {
    std::complex<double> qc(q[0][h][i][2 * t].item<double>(), q[0][h][i][2 * t + 1].item<double>());
    std::complex<double> kc(k[0][h][j][2 * t].item<double>(), k[0][h][j][2 * t + 1].item<double>());
    sum +=
        qc * std::conj(kc) * std::polar(1.0, double(i - j) * theta[t]) * factor(t, double(i - j));
  }
  return sum.real();
}

std::vector<double> rope_theta(int64_t dims, double base) {
  std::vector<double> theta;
  for (int64_t t = 0; t < dims / 2; ++t) theta.push_back(std::pow(base, -2.0 * double(t) / dims));
  return theta;
}

void set(const PositionalEncodingPtr& pe, const std::string& name, const torch::Tensor& value) {
  auto params = pe->named_parameters();
  ASSERT_TRUE(params.contains(name)) << pe->name() << " has no parameter " << name;
  torch::NoGradGuard g;
  params[name].copy_(value);
}

}  // namespace

TEST(Xpos, LogitsMatchTheDecayedComplexFormulaAndDependOnlyOnOffset) {
  const double scale_base = 16.0;
  auto pe = small_pe("xpos", [&](ModelConfig& m) {
    m.rope_base = 100.0;
    m.xpos_scale_base = scale_base;
  });
  EXPECT_EQ(pe->kind(), PeKind::kRotary);
  const int64_t L = 9, D = 8;
  auto q = torch::randn({1, 4, L, D}, torch::kDouble);
  auto k = torch::randn({1, 4, L, D}, torch::kDouble);
  auto pos = torch::arange(L, torch::kLong);
  auto [qr, kr] = pe->rotate(q, k, pos);
  auto [qs, ks] = pe->rotate(q, k, pos + 11);
  const auto theta = rope_theta(D, 100.0);
  auto decay = [&](int64_t t, double offset) {
    const double zeta = (2.0 * double(t) / D + 0.4) / 1.4;
    return std::pow(zeta, offset / scale_base);
  };
  for (int64_t h = 0; h < 4; ++h)
    for (int64_t i = 0; i < L; ++i)
      for (int64_t j = 0; j < L; ++j) {
        const double expected = complex_logit(q, k, h, i, j, theta, decay);
        EXPECT_NEAR(head_logit(qr, kr, h, i, j), expected, 1e-10);
        EXPECT_NEAR(head_logit(qs, ks, h, i, j), expected, 1e-10);
      }
  // Kernel: RoPE's T times the decay, by a double loop.
  const auto T = pe->kernel(7, 0);
  ASSERT_EQ(T.sizes(), (std::vector<int64_t>{4, 7, 7}));
  for (int64_t i = 0; i < 7; ++i)
    for (int64_t j = 0; j < 7; ++j) {
      double sum = 0;
      for (int64_t t = 0; t < D / 2; ++t) sum += std::cos((i - j) * theta[t]) * decay(t, i - j);
      EXPECT_NEAR(T[2][i][j].item<double>(), sum / (D / 2), 1e-12);
    }
}

TEST(Prope, DropsTheLowestFrequenciesWhichPassUnrotated) {
  auto pe = small_pe("prope", [](ModelConfig& m) {
    m.rope_base = 100.0;
    m.rope_truncate = 0.5;  // 2 of the 4 pairs of each head
  });
  const int64_t L = 7, D = 8;
  auto q = torch::randn({1, 4, L, D}, torch::kDouble);
  auto k = torch::randn({1, 4, L, D}, torch::kDouble);
  auto [qr, kr] = pe->rotate(q, k, torch::arange(L, torch::kLong));
  auto theta = rope_theta(D, 100.0);
  theta[2] = theta[3] = 0.0;
  auto one = [](int64_t, double) { return 1.0; };
  for (int64_t i = 0; i < L; ++i)
    for (int64_t j = 0; j < L; ++j)
      EXPECT_NEAR(head_logit(qr, kr, 1, i, j), complex_logit(q, k, 1, i, j, theta, one), 1e-10);
  // The truncated pairs (dims 4..7) are bit-identical to the input.
  EXPECT_TRUE(torch::equal(qr.narrow(-1, 4, 4), q.narrow(-1, 4, 4)));
  EXPECT_FALSE(torch::equal(qr.narrow(-1, 0, 4), q.narrow(-1, 0, 4)));
  // Kernel floor: T_ij = (2 + cos((i-j) theta_0) + cos((i-j) theta_1)) / 4.
  const auto T = pe->kernel(6, 0);
  for (int64_t i = 0; i < 6; ++i)
    for (int64_t j = 0; j < 6; ++j)
      EXPECT_NEAR(T[0][i][j].item<double>(),
                  (2.0 + std::cos((i - j) * theta[0]) + std::cos((i - j) * theta[1])) / 4.0, 1e-12);
  // rope_truncate = 0 is rope; 1 leaves every dim unrotated.
  auto rope = small_pe("rope", [](ModelConfig& m) { m.rope_base = 100.0; });
  auto full = small_pe("prope", [](ModelConfig& m) {
    m.rope_base = 100.0;
    m.rope_truncate = 0.0;
  });
  auto pos = torch::arange(L, torch::kLong);
  EXPECT_TRUE(torch::equal(full->rotate(q, k, pos).first, rope->rotate(q, k, pos).first));
  auto none = small_pe("prope", [](ModelConfig& m) { m.rope_truncate = 1.0; });
  EXPECT_TRUE(torch::equal(none->rotate(q, k, pos).first, q));
}

TEST(Kerple, LogAndPowerBiasesMatchDoubleLoopsInEveryLayer) {
  for (const std::string variant : {"log", "power"}) {
    auto pe = small_pe("kerple", [&](ModelConfig& m) { m.kerple_variant = variant; });
    EXPECT_EQ(pe->kind(), PeKind::kBias);
    auto r1 = torch::tensor({{0.5, 1.0, 2.0, 0.001}, {1.5, 0.3, 0.7, 1.1}});
    auto r2 = torch::tensor({{0.2, 1.0, 3.0, 0.5}, {0.9, 0.001, 1.2, 1.8}});
    set(pe, "r1", r1);
    set(pe, "r2", r2);
    for (int64_t layer = 0; layer < 2; ++layer) {
      const auto B = pe->kernel(9, layer);
      ASSERT_EQ(B.sizes(), (std::vector<int64_t>{4, 9, 9}));
      for (int64_t h = 0; h < 4; ++h)
        for (int64_t i = 0; i < 9; ++i)
          for (int64_t j = 0; j < 9; ++j) {
            // Clamped as documented: r >= 0.01, power's r2 <= 2.
            const double a = std::max(r1[layer][h].item<double>(), 0.01);
            double b = std::max(r2[layer][h].item<double>(), 0.01);
            const double d = std::abs(double(i - j));
            double expected = 0;
            if (variant == "log") {
              expected = -a * std::log(1.0 + b * d);
            } else {
              b = std::min(b, 2.0);
              expected = -a * std::pow(d, b);
            }
            EXPECT_NEAR(B[h][i][j].item<double>(), expected, 1e-5 * (1 + std::abs(expected)))
                << variant << " layer " << layer << " head " << h;
          }
    }
    // Gradients are finite (the power variant's 0^r2 on the diagonal included).
    pe->bias(9, 1).sum().backward();
    for (const auto& p : pe->parameters())
      EXPECT_TRUE(torch::isfinite(p.grad()).all().item<bool>()) << variant;
  }
}

TEST(Fire, BiasIsTheMlpOfTheInterpolatedLogDistance) {
  auto pe = small_pe("fire", [](ModelConfig& m) {
    m.fire_hidden = 5;
    m.fire_c = 0.7;
    m.fire_length = 6.0;
  });
  EXPECT_EQ(pe->kind(), PeKind::kBias);
  auto params = pe->named_parameters();
  for (auto& p : params) {
    torch::NoGradGuard g;
    if (p.key() != "c" && p.key() != "length") p.value().normal_();
  }
  const int64_t L = 10;
  for (int64_t layer = 0; layer < 2; ++layer) {
    const auto B = pe->kernel(L, layer);
    auto w1 = params["w1"][layer], b1 = params["b1"][layer];
    auto w2 = params["w2"][layer], b2 = params["b2"][layer];
    for (int64_t h = 0; h < 4; ++h)
      for (int64_t i = 0; i < L; ++i)
        for (int64_t j = 0; j < L; ++j) {
          auto psi = [](double x) { return std::log(0.7 * x + 1.0); };
          const double offset = double(i - j);
          const double sign = offset > 0 ? 1.0 : offset < 0 ? -1.0 : 0.0;
          const double x = sign * psi(std::abs(offset)) / psi(std::max(6.0, double(i)));
          double out = b2[h].item<double>();
          for (int64_t u = 0; u < 5; ++u)
            out += w2[h][u].item<double>() *
                   std::max(0.0, w1[u].item<double>() * x + b1[u].item<double>());
          EXPECT_NEAR(B[h][i][j].item<double>(), out, 1e-5 * (1 + std::abs(out)));
        }
    // Toeplitz on the first L rows (constant normaliser psi(L)).
    for (int64_t i = 1; i < 6; ++i)
      for (int64_t j = 1; j < L; ++j)
        EXPECT_NEAR(B[0][i][j].item<double>(), B[0][i - 1][j - 1].item<double>(), 1e-5);
  }
  // Every parameter (c and L included) gets a gradient.
  pe->bias(L, 0).pow(2).sum().backward();
  for (const auto& p : pe->named_parameters()) EXPECT_TRUE(p.value().grad().defined()) << p.key();
  EXPECT_GT(params["c"].grad()[0].abs().item<double>(), 0.0);
  EXPECT_GT(params["length"].grad()[0].abs().item<double>(), 0.0);
}

// CoPE's bias against a triple loop: gates, contextual positions, interpolation.
TEST(Cope, ContextualBiasMatchesTripleLoopUnderEveryMask) {
  auto pe = small_pe("cope", [](ModelConfig& m) { m.cope_positions = 6; });
  EXPECT_EQ(pe->kind(), PeKind::kContextual);
  EXPECT_FALSE(pe->kernel(5, 0).defined());
  set(pe, "embeddings", torch::randn({2, 8, 6}));
  const int64_t L = 7, D = 8;
  auto q = torch::randn({2, 4, L, D}, torch::kDouble);
  auto k = torch::randn({2, 4, L, D}, torch::kDouble);
  const double inf = std::numeric_limits<double>::infinity();
  std::vector<std::pair<std::string, torch::Tensor>> masks = {
      {"none", torch::Tensor()},
      {"causal", torch::full({L, L}, -inf, torch::kDouble).triu(1).view({1, 1, L, L})},
      {"padding", torch::zeros({2, 1, 1, L}, torch::kDouble)}};
  masks[2].second.index_put_({1, 0, 0, torch::indexing::Slice(5, L)}, -inf);
  auto e = pe->named_parameters()["embeddings"][1].to(torch::kDouble);
  for (const auto& [label, mask] : masks) {
    const auto bias = pe->contextual_bias(q, k, mask, 1);
    ASSERT_EQ(bias.sizes(), (std::vector<int64_t>{2, 4, L, L}));
    for (int64_t b = 0; b < 2; ++b)
      for (int64_t h = 0; h < 4; h += 3)
        for (int64_t i = 0; i < L; ++i)
          for (int64_t j = 0; j < L; ++j) {
            auto allowed = [&](int64_t t) {
              if (label == "causal") return t <= i;
              if (label == "padding") return b == 0 || t < 5;
              return true;
            };
            double p = 0;
            for (int64_t t = std::min(i, j); t <= std::max(i, j); ++t)
              if (allowed(t))
                p += 1.0 / (1.0 + std::exp(-(q[b][h][i] * k[b][h][t]).sum().item<double>() /
                                           std::sqrt(double(D))));
            p = std::min(p, 5.0);
            const auto lo = int64_t(std::floor(p)), hi = int64_t(std::ceil(p));
            const double w = p - std::floor(p);
            const double expected = w * (q[b][h][i] * e.select(1, hi)).sum().item<double>() +
                                    (1 - w) * (q[b][h][i] * e.select(1, lo)).sum().item<double>();
            EXPECT_NEAR(bias[b][h][i][j].item<double>(), expected, 1e-9)
                << label << " b" << b << " h" << h << " i" << i << " j" << j;
          }
  }
}

TEST(RopeScaling, FrequenciesFollowThePublishedDefinitions) {
  const int64_t D = 8;
  const double base = 1000.0, s = 4.0;
  auto theta_of = [&](const std::string& scaling, int64_t original) {
    auto pe = small_pe("rope", [&](ModelConfig& m) {
      m.rope_base = base;
      m.rope_scaling = scaling;
      m.rope_scaling_factor = s;
      m.rope_original_length = original;
    });
    // Recover theta_t from the rotation of a unit vector at position 1.
    auto x = torch::zeros({1, 1, 2, D}, torch::kDouble);
    x.index_put_({torch::indexing::Ellipsis, torch::indexing::Slice(0, D, 2)}, 1.0);
    auto y = pe->rotate(x, x, torch::arange(2, torch::kLong)).first[0][0][1];
    std::vector<double> theta, magnitude;
    for (int64_t t = 0; t < D / 2; ++t) {
      const double a = y[2 * t].item<double>(), b = y[2 * t + 1].item<double>();
      theta.push_back(std::atan2(b, a));
      magnitude.push_back(std::hypot(a, b));
    }
    return std::make_pair(theta, magnitude);
  };
  const auto plain = rope_theta(D, base);
  const auto [linear, linear_mag] = theta_of("linear", 0);
  const auto [ntk, ntk_mag] = theta_of("ntk", 0);
  const auto [yarn, yarn_mag] = theta_of("yarn", 1024);
  const auto ntk_reference = rope_theta(D, base * std::pow(s, double(D) / (D - 2)));
  for (int64_t t = 0; t < D / 2; ++t) {
    EXPECT_NEAR(linear[t], plain[t] / s, 1e-12) << t;
    EXPECT_NEAR(linear_mag[t], 1.0, 1e-12);
    EXPECT_NEAR(ntk[t], ntk_reference[t], 1e-12) << t;
    // YaRN: r = 1024 theta / 2 pi rotations over the training context; ramp between 1 and 32.
    const double r = 1024.0 * plain[t] / (2 * std::numbers::pi);
    const double gamma = std::clamp((r - 1.0) / 31.0, 0.0, 1.0);
    EXPECT_NEAR(yarn[t], (1 - gamma) * plain[t] / s + gamma * plain[t], 1e-12) << t;
    EXPECT_NEAR(yarn_mag[t], 0.1 * std::log(s) + 1.0, 1e-12);
  }
  EXPECT_NEAR(ntk[0], plain[0], 1e-12);  // NTK keeps the highest frequency
  // At this base and length the ramp keeps pair 0 (163 rotations), blends pairs 1 and 2 and
  // interpolates pair 3 (0.9 rotations).
  EXPECT_NEAR(yarn[0], plain[0], 1e-12);
  EXPECT_GT(yarn[1], plain[1] / s + 1e-6);
  EXPECT_LT(yarn[2], plain[2] - 1e-6);
  EXPECT_NEAR(yarn[3], plain[3] / s, 1e-12);
  // Every rotary PE takes the scaling (mla's rotary channel too): linear scaling by 2 at
  // positions 2i is the plain rotation at i. xPos keeps its decay on the true positions, so its
  // kernel is mean_t cos((i - j) theta_t / 2) zeta_t^((i - j) / B).
  auto xpos = small_pe("xpos", [](ModelConfig& m) {
    m.rope_scaling = "linear";
    m.rope_scaling_factor = 2;
  });
  const auto T = xpos->kernel(6, 0);
  const auto theta8 = rope_theta(8, 10000.0);
  for (int64_t i = 0; i < 6; ++i)
    for (int64_t j = 0; j < 6; ++j) {
      double sum = 0;
      for (int64_t t = 0; t < 4; ++t)
        sum += std::cos((i - j) * theta8[t] / 2) *
               std::pow((2.0 * t / 8 + 0.4) / 1.4, (i - j) / 512.0);
      EXPECT_NEAR(T[0][i][j].item<double>(), sum / 4, 1e-12);
    }
  for (const std::string pe : {"rope_abs", "prope", "mla"}) {
    auto scaled = small_pe(pe, [](ModelConfig& m) {
      m.rope_scaling = "linear";
      m.rope_scaling_factor = 2;
    });
    auto plain_pe = small_pe(pe);
    auto x = torch::randn({1, 1, 5, 8}, torch::kDouble);
    auto pos = torch::arange(5, torch::kLong);
    EXPECT_TRUE(torch::allclose(scaled->rotate(x, x, pos * 2).first,
                                plain_pe->rotate(x, x, pos).first, 1e-12, 1e-12))
        << pe;
  }
}

TEST(RopeScaling, EvalOverridesAcceptOnlyScalingKeys) {
  Config trained;
  trained.task.seq_len = 200;
  auto config = config_with_eval_overrides(
      trained, {"model.rope_scaling=yarn", "model.rope_scaling_factor=4"});
  EXPECT_EQ(config.model.rope_scaling, "yarn");
  EXPECT_EQ(config.model.rope_scaling_factor, 4.0);
  EXPECT_EQ(config.model.rope_original_length, 200);  // the training context
  try {
    config_with_eval_overrides(trained, {"model.d_model=64"});
    ADD_FAILURE() << "no error";
  } catch (const ConfigError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("model.d_model"), std::string::npos) << msg;
    EXPECT_NE(msg.find("model.rope_scaling_factor"), std::string::npos) << msg;
  }
  EXPECT_THROW(config_with_eval_overrides(trained, {"model.rope_scaling=cubic"}), ConfigError);
  EXPECT_THROW(config_with_eval_overrides(trained, {"model.rope_scaling_factor=4"}), ConfigError);
}

TEST(RandomPositions, SortedDistinctInRangeAndDeterministic) {
  torch::manual_seed(5);
  auto a = random_positions(30, 100);
  torch::manual_seed(5);
  auto b = random_positions(30, 100);
  EXPECT_TRUE(torch::equal(a, b));
  ASSERT_EQ(a.size(0), 30);
  for (int64_t i = 0; i < 30; ++i) {
    EXPECT_GE(a[i].item<int64_t>(), 0);
    EXPECT_LT(a[i].item<int64_t>(), 100);
    if (i > 0) {
      EXPECT_GT(a[i].item<int64_t>(), a[i - 1].item<int64_t>());
    }
  }
  EXPECT_FALSE(torch::equal(a, torch::arange(30, torch::kLong)));
}

// Training draws positions from [0, max_position); evaluation uses 0..L-1 and so matches a model
// without random positions carrying the same weights. Bias PEs take B at the drawn positions.
TEST(RandomPositions, TrainingUsesDrawnPositionsAndEvaluationIsUnchanged) {
  for (const std::string pe : {"rope", "learned", "alibi", "kerple", "fire", "xpos"}) {
    ModelConfig m;
    m.pe = pe;
    m.d_model = 16;
    m.n_heads = 2;
    m.n_layers = 2;
    m.d_ff = 24;
    m.dropout = 0;
    m.attention_dropout = 0;
    ModelConfig randomised = m;
    randomised.random_positions = true;
    randomised.max_position = 64;
    torch::manual_seed(3);
    Transformer plain(m, 30, 5, 12);
    torch::manual_seed(3);
    Transformer drawn(randomised, 30, 5, 12);
    {
      // Same weights: the absolute table of `drawn` is longer; copy the shared prefix.
      torch::NoGradGuard g;
      auto source = plain->named_parameters();
      for (auto& p : drawn->named_parameters())
        if (p.value().sizes() == source[p.key()].sizes())
          p.value().copy_(source[p.key()]);
        else
          p.value().narrow(0, 0, source[p.key()].size(0)).copy_(source[p.key()]);
    }
    auto lengths = torch::tensor({12, 7}, torch::kLong);
    auto tokens = torch::randint(1, 30, {2, 12}, torch::kLong);
    plain->eval();
    drawn->eval();
    EXPECT_TRUE(torch::allclose(plain->forward(tokens, lengths), drawn->forward(tokens, lengths),
                                1e-6, 1e-6))
        << pe;
    drawn->train();
    torch::manual_seed(9);
    auto state = drawn->begin(tokens, lengths);
    torch::manual_seed(9);
    EXPECT_TRUE(torch::equal(state.inputs.positions, random_positions(12, 64))) << pe;
    if (pe == "alibi" || pe == "kerple") {
      // B at the drawn positions: -m |p_i - p_j| shapes, by a double loop on the full bias.
      auto full = drawn->pe->bias(64, 1);
      auto at = positional_bias(*drawn->pe, state.inputs.positions, 12, 1);
      for (int64_t i = 0; i < 12; ++i)
        for (int64_t j = 0; j < 12; ++j)
          EXPECT_EQ(at[1][i][j].item<float>(), full[1][state.inputs.positions[i].item<int64_t>()]
                                                   [state.inputs.positions[j].item<int64_t>()]
                                                       .item<float>());
    }
    // A training forward pass differs from the evaluation one (other positions).
    auto trained_logits = drawn->forward(tokens, lengths);
    EXPECT_FALSE(torch::allclose(trained_logits, plain->forward(tokens, lengths), 1e-6, 1e-6))
        << pe;
  }
}
