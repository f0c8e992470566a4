// The fused attention kernels against the explicit path: outputs and every gradient, for every
// instruction set this CPU runs, several shapes, masks and biases, and through whole models for
// every PE; dropout's keep rate, scaling and determinism.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <limits>

#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
#endif

#include "attention_reference.h"
#include "fixtures.h"
#include "kernels/fused_attention.h"
#include "kernels/fused_dropout.h"
#include "model/transformer.h"
#include "pe/pe.h"

using namespace pelab;
using namespace pelab::testing_reference;

namespace {

constexpr double kTolerance = 1e-5;  // relative norm error, float32, dropout off

const std::vector<AttentionShape> kShapes = {
    {2, 3, 17, 8, 8}, {1, 1, 5, 16, 16},  {3, 2, 33, 24, 16},  {2, 4, 64, 64, 64},
    {2, 2, 1, 8, 8},  {2, 1, 40, 12, 20}, {1, 2, 130, 32, 32},
};

// Forward and all gradients of the fused kernels (current ISA) against the explicit path.
void expect_matches_explicit(const AttentionShape& s, const std::string& mask_kind,
                             const std::string& bias_kind, const std::string& label) {
  auto q = torch::randn({s.batch, s.heads, s.length, s.qk_dim});
  auto k = torch::randn({s.batch, s.heads, s.length, s.qk_dim});
  auto v = torch::randn({s.batch, s.heads, s.length, s.v_dim});
  torch::Tensor bias;
  if (bias_kind == "steep") {
    bias = steep_bias(s.heads, s.length);
  } else if (bias_kind != "none") {
    bias = torch::randn({s.heads, s.length, s.length});
  }
  auto mask = make_mask(mask_kind, s.batch, s.length);
  const double scale = 1.0 / std::sqrt(double(s.qk_dim));
  auto grad_out = torch::randn({s.batch, s.length, s.heads * s.v_dim});

  auto run = [&](bool fused) {
    auto qq = q.clone().requires_grad_(true), kk = k.clone().requires_grad_(true),
         vv = v.clone().requires_grad_(true);
    torch::Tensor bb;
    if (bias.defined()) bb = bias.clone().requires_grad_(bias_kind == "learned");
    auto out = fused ? fused_attention(qq, kk, vv, bb, mask, scale, 0.0)
                     : explicit_attention(qq, kk, vv, bb, mask, scale);
    (out * grad_out).sum().backward();
    std::vector<torch::Tensor> results = {out.detach(), qq.grad(), kk.grad(), vv.grad()};
    if (bias_kind == "learned") results.push_back(bb.grad());
    return results;
  };
  ASSERT_TRUE(fused_attention_supported(q, k, v, bias, mask)) << label;
  const auto fused = run(true), reference = run(false);
  const char* names[] = {"output", "grad q", "grad k", "grad v", "grad bias"};
  for (size_t i = 0; i < reference.size(); ++i) {
    ASSERT_TRUE(fused[i].defined()) << label << " " << names[i];
    EXPECT_LT(relative_error(fused[i], reference[i]), kTolerance) << label << " " << names[i];
  }
}

class FusedAttentionIsa : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    previous_ = fused_attention_isa();
    set_fused_attention_isa(GetParam());
  }
  void TearDown() override { set_fused_attention_isa(previous_); }
  std::string previous_;
};

}  // namespace

TEST(FusedAttention, SomeInstructionSetIsAvailable) {
  const auto isas = fused_attention_isas();
  ASSERT_FALSE(isas.empty());
  EXPECT_EQ(isas.back(), "generic");
  EXPECT_THROW(set_fused_attention_isa("sse1"), std::invalid_argument);
}

TEST_P(FusedAttentionIsa, MatchesExplicitPathForEveryShapeMaskAndBias) {
  torch::manual_seed(11);
  for (const auto& s : kShapes)
    for (const std::string mask : {"none", "padding", "causal"})
      for (const std::string bias : {"none", "fixed", "learned"})
        expect_matches_explicit(
            s, mask, bias,
            fmt::format("{} B{} H{} L{} Dk{} Dv{} mask={} bias={}", GetParam(), s.batch, s.heads,
                        s.length, s.qk_dim, s.v_dim, mask, bias));
}

// q, k and v as the model hands them over: strided views of [B, L, H * D] projections.
TEST_P(FusedAttentionIsa, TakesStridedHeadViews) {
  torch::manual_seed(12);
  const int64_t B = 2, L = 9, H = 3, D = 8;
  auto projected = torch::randn({B, L, 3 * H * D});
  auto heads = [&](int64_t part) {
    return projected.narrow(2, part * H * D, H * D).view({B, L, H, D}).transpose(1, 2);
  };
  auto mask = make_mask("padding", B, L);
  auto fused = fused_attention(heads(0), heads(1), heads(2), {}, mask, 0.3, 0.0);
  auto reference = explicit_attention(heads(0), heads(1), heads(2), {}, mask, 0.3);
  EXPECT_LT(relative_error(fused, reference), kTolerance);
}

// The gradients of [B, H, L, D] head views of [B, L, H D] projections come back in the
// projections' layout, so the views' backward passes them on without a copy; and they are the
// explicit path's gradients.
TEST_P(FusedAttentionIsa, HeadGradientsComeInTheProjectionsLayout) {
  torch::manual_seed(13);
  const int64_t B = 2, L = 9, H = 3, D = 8;
  auto run = [&](bool fused) {
    std::vector<torch::Tensor> projections, incoming(3);
    std::vector<torch::Tensor> heads;
    torch::manual_seed(14);
    for (int part = 0; part < 3; ++part) {
      projections.push_back(torch::randn({B, L, H * D}, torch::requires_grad()));
      heads.push_back(projections.back().view({B, L, H, D}).transpose(1, 2));
      heads.back().register_hook([&incoming, part](torch::Tensor g) { incoming[part] = g; });
    }
    auto mask = make_mask("padding", B, L);
    auto out = fused ? fused_attention(heads[0], heads[1], heads[2], {}, mask, 0.3, 0.0)
                     : explicit_attention(heads[0], heads[1], heads[2], {}, mask, 0.3);
    (out * torch::linspace(-1, 1, out.numel()).view(out.sizes())).sum().backward();
    return std::make_pair(projections, incoming);
  };
  const auto [fused, fused_incoming] = run(true);
  const auto [reference, reference_incoming] = run(false);
  for (int part = 0; part < 3; ++part) {
    EXPECT_TRUE(fused_incoming[part].transpose(1, 2).is_contiguous())
        << "part " << part << ": strides " << fused_incoming[part].strides();
    EXPECT_LT(relative_error(fused[part].grad(), reference[part].grad()), kTolerance);
  }
}

// ALiBi with the paper's slopes over 128 positions pushes logits to -127: probabilities of 1e-30
// and below, whose products with gradients are float denormals. The kernels flush those to zero
// (they are slow on x86); the results must still match the explicit path, and the caller's
// floating-point mode must be as it was.
TEST_P(FusedAttentionIsa, SteepBiasesMatchExplicitAndLeaveTheCallersFloatModeAlone) {
  torch::manual_seed(13);
#if defined(__x86_64__) || defined(__i386__)
  // The control bits only (rounding, exception masks, FTZ, DAZ); bits 0-5 are sticky status flags
  // that any computation may raise.
  constexpr unsigned kControlBits = ~0x3Fu;
  const unsigned float_mode = _mm_getcsr() & kControlBits;
#endif
  expect_matches_explicit({2, 4, 128, 16, 16}, "none", "steep", GetParam() + " steep bias L128");
#if defined(__x86_64__) || defined(__i386__)
  EXPECT_EQ(_mm_getcsr() & kControlBits, float_mode)
      << "the kernel left flush-to-zero set on the calling thread";
#endif
}

// The bias gradient sums each head's batch elements in one order whatever the thread count or
// scheduling, so training with a learned bias (relative, T5, ...) gives the same bits on one
// thread and on three. Per-thread accumulators summed at the end, as the kernels once had, add
// in a different order and fail this.
TEST(FusedAttention, BiasGradientIsTheSameBitsOnAnyNumberOfThreads) {
  torch::manual_seed(21);
  const auto q = torch::randn({6, 3, 40, 16}), k = torch::randn({6, 3, 40, 16}),
             v = torch::randn({6, 3, 40, 16}), bias = torch::randn({3, 40, 40}),
             grad_out = torch::randn({6, 40, 48});
  const int threads_before = at::get_num_threads();
  auto gradients_on = [&](int threads) {
    at::set_num_threads(threads);
    auto qq = q.clone().requires_grad_(true), bb = bias.clone().requires_grad_(true);
    (fused_attention(qq, k, v, bb, {}, 0.25, 0.0) * grad_out).sum().backward();
    return std::make_pair(bb.grad(), qq.grad());
  };
  const auto one = gradients_on(1), three = gradients_on(3);
  at::set_num_threads(threads_before);
  EXPECT_TRUE(torch::equal(one.first, three.first)) << "bias gradient, 1 vs 3 threads";
  EXPECT_TRUE(torch::equal(one.second, three.second)) << "query gradient, 1 vs 3 threads";
}

// RoPE's rotation applied inside the kernels (rotary_tables) gives the same bits as rotating q
// and k first (the PE's rotate()) and running the kernels on the result: output and the
// gradients of q, k and v, on every instruction set. The PEs cover what a table carries: all
// heads or the first one, a rotary fraction (dims that pass through), xPos's different q and k
// magnitudes, YaRN's attention factor; positions are randomized (gaps), a padding mask and
// dropout are on.
TEST_P(FusedAttentionIsa, RopeInsideTheKernelsIsTheSameBitsAsRotatingFirst) {
  struct Case {
    std::string pe;
    int64_t rotary_heads;
    double rotary_fraction;
    std::string rope_scaling;
  };
  const std::vector<Case> cases = {{"rope", -1, 1.0, "none"},
                                   {"rope", 1, 0.5, "none"},
                                   {"xpos", -1, 1.0, "none"},
                                   {"rope", -1, 0.75, "yarn"},
                                   {"prope", -1, 1.0, "none"}};
  for (const auto& c : cases) {
    const std::string label = fmt::format("{} heads={} fraction={} scaling={}", c.pe,
                                          c.rotary_heads, c.rotary_fraction, c.rope_scaling);
    PeOptions options;
    options.model = test_fixtures::small_model_config(c.pe, "padding");
    options.model.n_heads = 3;
    options.model.d_model = 3 * 24;
    options.model.rotary_heads = c.rotary_heads;
    options.model.rotary_fraction = c.rotary_fraction;
    options.model.rope_scaling = c.rope_scaling;
    options.model.rope_scaling_factor = c.rope_scaling == "none" ? 1.0 : 4.0;
    options.max_len = 64;
    const auto pe = make_pe(options);
    torch::manual_seed(5);
    const int64_t B = 2, H = 3, L = 37, D = 24;
    const auto positions = std::get<0>(torch::randperm(60, torch::kLong).narrow(0, 0, L).sort());
    const auto q = torch::randn({B, H, L, D}), k = torch::randn({B, H, L, D}),
               v = torch::randn({B, H, L, D}), grad_out = torch::randn({B, L, H * D});
    const auto mask = make_mask("padding", B, L);
    const auto tables = pe->rotary_tables(positions);
    ASSERT_TRUE(tables.defined()) << label;

    auto run = [&](bool inside) {
      auto qq = q.clone().requires_grad_(true), kk = k.clone().requires_grad_(true),
           vv = v.clone().requires_grad_(true);
      torch::manual_seed(9);  // the same dropout mask for both
      torch::Tensor out;
      if (inside) {
        out = fused_attention(qq, kk, vv, {}, mask, 0.2, 0.1, tables);
      } else {
        const auto [rq, rk] = pe->rotate(qq, kk, positions);
        out = fused_attention(rq, rk, vv, {}, mask, 0.2, 0.1);
      }
      (out * grad_out).sum().backward();
      return std::vector<torch::Tensor>{out.detach(), qq.grad(), kk.grad(), vv.grad()};
    };
    const auto inside = run(true), first = run(false);
    const char* names[] = {"output", "grad q", "grad k", "grad v"};
    for (size_t i = 0; i < first.size(); ++i)
      EXPECT_TRUE(torch::equal(inside[i], first[i]))
          << label << " " << names[i] << ": max difference "
          << (inside[i] - first[i]).abs().max().item<double>();
  }
}

// Tables that do not fit q and k are refused by name.
TEST(FusedAttention, RefusesRopeTablesOfTheWrongShape) {
  const auto q = torch::randn({1, 2, 8, 4}), k = torch::randn({1, 2, 8, 4}),
             v = torch::randn({1, 2, 8, 4});
  RotaryTables tables;
  tables.q_cos = tables.k_cos = torch::ones({8, 3});  // 6 rotary dims > head dim 4
  tables.q_sin = tables.k_sin = torch::zeros({8, 3});
  tables.heads = 2;
  try {
    fused_attention(q, k, v, {}, {}, 0.5, 0.0, tables);
    FAIL() << "accepted 6 rotary dims on a 4-dim head";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what()).find("RoPE tables"), std::string::npos) << e.what();
  }
}

INSTANTIATE_TEST_SUITE_P(EveryIsa, FusedAttentionIsa, ::testing::ValuesIn(fused_attention_isas()),
                         [](const auto& info) { return info.param; });

namespace {

// FIRE's output bias b2 adds one constant to every logit of a head. Softmax ignores that, so its
// true gradient is zero and what both paths compute is rounding noise, about 1e-8 here.
constexpr double kZeroGradient = 1e-6;

ModelConfig model_config(const std::string& pe, const std::string& mask, bool fused) {
  ModelConfig m = test_fixtures::small_model_config(pe, mask);
  m.fused_attention = fused;
  return m;
}

}  // namespace

// Whole models, fused vs explicit: logits and the gradient of every parameter, for every PE in
// the registry and every mask.
TEST(FusedAttention, WholeModelMatchesExplicitForEveryPeAndMask) {
  for (const auto& pe : pe_names()) {
    for (const std::string mask : {"none", "padding", "causal"}) {
      const std::string label = pe + " mask=" + mask;
      torch::manual_seed(21);
      auto lengths = torch::tensor({13, 4, 9}, torch::kLong);
      auto valid = torch::arange(13).unsqueeze(0) < lengths.unsqueeze(1);
      auto tokens = torch::randint(1, 30, {3, 13}, torch::kLong) * valid.to(torch::kLong);
      auto labels = torch::tensor({0, 3, 2}, torch::kLong);
      std::vector<torch::Tensor> logits;
      std::vector<Transformer> models;
      for (bool fused : {true, false}) {
        torch::manual_seed(22);
        Transformer model(model_config(pe, mask, fused), 30, 5, 13);
        // Learned biases start at zero; give them values so their gradients mean something.
        torch::NoGradGuard no_grad;
        for (auto& p : model->named_parameters())
          if (p.key().find("pe.") == 0) p.value().normal_(0, 0.5);
        models.push_back(model);
      }
      for (auto& model : models) {
        auto out = model->forward(tokens, lengths);
        torch::nn::functional::cross_entropy(out, labels).backward();
        logits.push_back(out.detach());
      }
      EXPECT_LT(relative_error(logits[0], logits[1]), kTolerance) << label;
      const auto fused_params = models[0]->named_parameters();
      const auto explicit_params = models[1]->named_parameters();
      for (const auto& p : explicit_params) {
        const auto& fused_grad = fused_params[p.key()].grad();
        ASSERT_TRUE(fused_grad.defined()) << label << " " << p.key();
        const auto& reference = p.value().grad();
        if (pe == "fire" && p.key() == "pe.b2") {  // noise against noise: bound both instead
          EXPECT_LT(fused_grad.norm().item<double>(), kZeroGradient) << label << " " << p.key();
          EXPECT_LT(reference.norm().item<double>(), kZeroGradient) << label << " " << p.key();
          continue;
        }
        // key.bias's true gradient is zero when the PE leaves keys alone (it shifts a query's
        // logits by the same amount for every key), so errors there are measured against 1e-3.
        const double diff = (fused_grad - reference).norm().item<double>();
        EXPECT_LT(diff / std::max(reference.norm().item<double>(), 1e-3), kTolerance)
            << label << " " << p.key();
      }
    }
  }
}

// Analysis taps (AttentionRecord) force the explicit path; the numbers agree either way.
TEST(FusedAttention, RecordedForwardTakesTheExplicitPathWithTheSameResult) {
  torch::manual_seed(23);
  Transformer model(model_config("alibi", "padding", true), 30, 5, 11);
  model->eval();
  auto lengths = torch::tensor({11, 6}, torch::kLong);
  auto tokens = torch::randint(1, 30, {2, 11}, torch::kLong);
  std::vector<AttentionRecord> records;
  ForwardOptions options;
  options.attention_records = &records;
  auto recorded = model->forward(tokens, lengths, options);
  ASSERT_TRUE(records[0].probabilities.defined());
  EXPECT_LT(relative_error(model->forward(tokens, lengths), recorded), kTolerance);
}

namespace {

// With q = k = 0 every weight is 1 / L; with v = one-hot keys each output coordinate is one
// weight after dropout: 0 (dropped) or 1 / (L (1 - p)) (kept). Returns keep indicators.
torch::Tensor observed_keep(int64_t B, int64_t H, int64_t L, double p) {
  auto zeros = torch::zeros({B, H, L, 8});
  auto one_hot = torch::eye(L).expand({B, H, L, L});
  auto out = fused_attention(zeros, zeros, one_hot, {}, {}, 1.0, p).view({B, L, H, L});
  return out.transpose(1, 2) * double(L) * (1 - p);  // [B, H, L, L]: 0 or 1
}

}  // namespace

TEST(FusedAttention, DropoutKeepRateAndScaling) {
  for (const auto& isa : fused_attention_isas()) {
    const auto previous = fused_attention_isa();
    set_fused_attention_isa(isa);
    for (double p : {0.1, 0.5}) {
      torch::manual_seed(31);
      auto keep = observed_keep(4, 4, 64, p);
      // Every weight is either dropped or scaled by exactly 1 / (1 - p).
      auto is_zero = keep.abs() < 1e-5, is_one = (keep - 1).abs() < 1e-5;
      EXPECT_TRUE(is_zero.logical_or(is_one).all().item<bool>()) << isa << " p=" << p;
      // Keep rate 1 - p within 5 standard deviations of a binomial over n weights.
      const double n = double(keep.numel());
      const double rate = is_one.to(torch::kDouble).mean().item<double>();
      EXPECT_NEAR(rate, 1 - p, 5 * std::sqrt(p * (1 - p) / n)) << isa << " p=" << p;
      // No structure along rows or columns: per-column keep rates are binomial too.
      auto column_rate = is_one.to(torch::kDouble).mean({0, 1, 2});
      EXPECT_LT((column_rate - (1 - p)).abs().max().item<double>(),
                6 * std::sqrt(p * (1 - p) / (n / 64)))
          << isa << " p=" << p;
    }
    set_fused_attention_isa(previous);
  }
}

TEST(FusedAttention, DropoutFollowsTheDefaultGeneratorAndIsTheSameOnEveryIsa) {
  torch::manual_seed(41);
  auto first = observed_keep(2, 2, 16, 0.3);
  auto second = observed_keep(2, 2, 16, 0.3);
  EXPECT_FALSE(torch::equal(first, second));  // a new seed per call
  for (const auto& isa : fused_attention_isas()) {
    const auto previous = fused_attention_isa();
    set_fused_attention_isa(isa);
    torch::manual_seed(41);
    EXPECT_TRUE(torch::allclose(observed_keep(2, 2, 16, 0.3), first, 0, 1e-5)) << isa;
    set_fused_attention_isa(previous);
  }
}

// Backward with dropout: the gradients of the explicit path given the same keep mask.
TEST(FusedAttention, DropoutGradientsMatchExplicitWithTheSameMask) {
  const int64_t B = 2, H = 3, L = 21, D = 16;
  const double p = 0.2;
  torch::manual_seed(51);
  auto q = torch::randn({B, H, L, D}), k = torch::randn({B, H, L, D}),
       v = torch::randn({B, H, L, D});
  auto bias = torch::randn({H, L, L});
  auto mask = make_mask("padding", B, L);
  auto grad_out = torch::randn({B, L, H * D});
  torch::manual_seed(52);
  auto keep = observed_keep(B, H, L, p).round();
  std::vector<std::vector<torch::Tensor>> grads;
  for (bool fused : {true, false}) {
    auto qq = q.clone().requires_grad_(true), kk = k.clone().requires_grad_(true),
         vv = v.clone().requires_grad_(true), bb = bias.clone().requires_grad_(true);
    torch::manual_seed(52);  // the same seed as the keep mask
    auto out = fused ? fused_attention(qq, kk, vv, bb, mask, 0.25, p)
                     : explicit_attention(qq, kk, vv, bb, mask, 0.25, keep, p);
    (out * grad_out).sum().backward();
    grads.push_back({out.detach(), qq.grad(), kk.grad(), vv.grad(), bb.grad()});
  }
  for (size_t i = 0; i < grads[0].size(); ++i)
    EXPECT_LT(relative_error(grads[0][i], grads[1][i]), kTolerance) << i;
}

// residual + dropout(x) in one pass: keep rate, scaling, the gradient uses the same mask, and
// every ISA makes the same decisions.
TEST(FusedDropout, KeepRateScalingAndGradient) {
  const double p = 0.3;
  auto residual = torch::randn({7, 33, 129});
  auto x = torch::ones({7, 33, 129}).requires_grad_(true);
  torch::manual_seed(61);
  auto out = dropout_add(residual, x, p, true);
  auto kept = out.detach() - residual;  // 0 or 1 / (1 - p)
  auto is_kept = (kept - 1 / (1 - p)).abs() < 1e-5;
  EXPECT_TRUE(is_kept.logical_or(kept.abs() < 1e-5).all().item<bool>());
  const double n = double(kept.numel());
  EXPECT_NEAR(is_kept.to(torch::kDouble).mean().item<double>(), 1 - p,
              5 * std::sqrt(p * (1 - p) / n));
  out.sum().backward();
  EXPECT_TRUE(torch::allclose(x.grad(), kept, 0, 1e-5));  // d out / d x is the same mask
  for (const auto& isa : fused_attention_isas()) {
    const auto previous = fused_attention_isa();
    set_fused_attention_isa(isa);
    torch::manual_seed(61);
    EXPECT_TRUE(torch::allclose(dropout_add(residual, x.detach(), p, true), out, 0, 1e-5)) << isa;
    set_fused_attention_isa(previous);
  }
  EXPECT_TRUE(torch::equal(dropout_add(residual, x.detach(), p, false), residual + 1));
}
