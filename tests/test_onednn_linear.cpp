// Linear layers through oneDNN against independent references: products and gradients against
// double precision, whole models (every PE x mask, fused attention + oneDNN linear layers)
// against the explicit path (explicit attention + at::linear), and bf16 mixed precision against
// float32 with its own tolerance.
#include <gtest/gtest.h>

#include "compare.h"
#include "config/config.h"
#include "fixtures.h"
#include "kernels/onednn_linear.h"
#include "model/transformer.h"
#include "pe/pe.h"

using namespace pelab;
using namespace pelab::test_compare;

namespace {

constexpr double kTolerance = 1e-5;  // relative norm error, float32
// A whole model's gradients compound the roundings of every product on the way back (measured:
// up to 4.5 % for the second layer's FFN in the 2-layer d_model 32 test model).
constexpr double kBf16ModelTolerance = 0.1;

}  // namespace

// c = a b (+ bias) for row-major and transposed operands and odd sizes, against double.
TEST(OnednnLinear, MatmulMatchesDoubleForEveryLayout) {
  if (!onednn_available()) GTEST_SKIP() << "built without oneDNN";
  torch::manual_seed(1);
  for (auto [M, K, N] : std::vector<std::array<int64_t, 3>>{
           {1, 1, 1}, {7, 5, 3}, {64, 33, 17}, {130, 128, 384}, {1, 40, 9}, {50, 1, 6}}) {
    for (bool transpose_a : {false, true}) {
      for (bool transpose_b : {false, true}) {
        for (bool with_bias : {false, true}) {
          auto a = transpose_a ? torch::randn({K, M}).t() : torch::randn({M, K});
          auto b = transpose_b ? torch::randn({N, K}).t() : torch::randn({K, N});
          auto bias = with_bias ? torch::randn({N}) : torch::Tensor();
          auto c = torch::full({M, N}, 7.0f);  // overwritten, not accumulated into
          onednn_matmul(a, b, bias, c);
          auto expected = torch::mm(a.to(torch::kDouble), b.to(torch::kDouble));
          if (with_bias) expected = expected + bias.to(torch::kDouble);
          EXPECT_LT(relative_error(c, expected), kTolerance)
              << M << "x" << K << "x" << N << " ta=" << transpose_a << " tb=" << transpose_b
              << " bias=" << with_bias;
        }
      }
    }
  }
  // A view that is neither row- nor column-major (every other column) is copied first.
  auto wide = torch::randn({9, 16});
  auto a = wide.slice(1, 0, 16, 2);
  auto b = torch::randn({8, 5});
  auto c = torch::empty({9, 5});
  onednn_matmul(a, b, {}, c);
  EXPECT_LT(relative_error(c, torch::mm(a.to(torch::kDouble), b.to(torch::kDouble))), kTolerance);
}

TEST(OnednnLinear, MatmulRejectsBadOperands) {
  if (!onednn_available()) GTEST_SKIP() << "built without oneDNN";
  auto c = torch::empty({3, 4});
  EXPECT_THROW(onednn_matmul(torch::randn({3, 5}), torch::randn({6, 4}), {}, c), c10::Error);
  EXPECT_THROW(onednn_matmul(torch::randn({3, 5}, torch::kDouble),
                             torch::randn({5, 4}, torch::kDouble), {}, c),
               c10::Error);
  auto wrong = torch::empty({4, 3});
  EXPECT_THROW(onednn_matmul(torch::randn({3, 5}), torch::randn({5, 4}), {}, wrong), c10::Error);
}

// Forward and the gradients of x, W and b against the same layer in double precision.
TEST(OnednnLinear, ForwardAndGradientsMatchDouble) {
  torch::manual_seed(2);
  for (bool with_bias : {true, false}) {
    auto x = torch::randn({3, 11, 24}, torch::requires_grad());
    auto w = torch::randn({40, 24}, torch::requires_grad());
    auto b = with_bias ? torch::randn({40}, torch::requires_grad()) : torch::Tensor();
    auto upstream = torch::randn({3, 11, 40});
    auto y = pelab::linear(x, w, b);
    ASSERT_EQ(y.sizes(), torch::IntArrayRef({3, 11, 40}));
    (y * upstream).sum().backward();

    auto xd = x.detach().to(torch::kDouble).requires_grad_();
    auto wd = w.detach().to(torch::kDouble).requires_grad_();
    auto bd = with_bias ? b.detach().to(torch::kDouble).requires_grad_() : torch::Tensor();
    auto yd = torch::matmul(xd, wd.t());
    if (with_bias) yd = yd + bd;
    (yd * upstream.to(torch::kDouble)).sum().backward();

    EXPECT_LT(relative_error(y.detach(), yd.detach()), kTolerance);
    EXPECT_LT(relative_error(x.grad(), xd.grad()), kTolerance);
    EXPECT_LT(relative_error(w.grad(), wd.grad()), kTolerance);
    if (with_bias) {
      EXPECT_LT(relative_error(b.grad(), bd.grad()), kTolerance);
    }
  }
}

// The FFN's relu(x W^T + b) with the ReLU inside the product and its backward fused with the
// bias gradient: forward and the gradients of x, W and b against double precision (float32),
// and against the unfused bf16 layer followed by torch::relu (bf16: the same rounded products,
// so the same ReLU mask; double's mask differs wherever rounding flips a sign near zero).
TEST(OnednnLinear, LinearReluAndItsGradientsMatchTheirReferences) {
  torch::manual_seed(9);
  for (bool bf16 : {false, true}) {
    if (bf16 && !bf16_products_here()) continue;
    for (bool with_bias : {true, false}) {
      torch::nn::Linear layer(torch::nn::LinearOptions(24, 40).bias(with_bias));
      auto x = torch::randn({3, 11, 24}, torch::requires_grad());
      auto upstream = torch::randn({3, 11, 40});
      torch::Tensor y;
      {
        Bf16ProductsGuard precision(bf16);
        y = linear_relu(layer, x);
        (y * upstream).sum().backward();
      }
      const auto fused_x = x.grad().clone(), fused_w = layer->weight.grad().clone();
      const auto fused_b = with_bias ? layer->bias.grad().clone() : torch::Tensor();

      torch::Tensor y_ref, grad_x, grad_w, grad_b;
      if (bf16) {
        x.mutable_grad().reset();
        layer->weight.mutable_grad().reset();
        if (with_bias) layer->bias.mutable_grad().reset();
        Bf16ProductsGuard precision(true);
        y_ref = torch::relu(pelab::linear(layer, x));
        (y_ref * upstream).sum().backward();
        grad_x = x.grad(), grad_w = layer->weight.grad();
        if (with_bias) grad_b = layer->bias.grad();
      } else {
        auto xd = x.detach().to(torch::kDouble).requires_grad_();
        auto wd = layer->weight.detach().to(torch::kDouble).requires_grad_();
        auto bd =
            with_bias ? layer->bias.detach().to(torch::kDouble).requires_grad_() : torch::Tensor();
        auto zd = torch::matmul(xd, wd.t());
        if (with_bias) zd = zd + bd;
        y_ref = torch::relu(zd);
        (y_ref * upstream.to(torch::kDouble)).sum().backward();
        grad_x = xd.grad(), grad_w = wd.grad();
        if (with_bias) grad_b = bd.grad();
      }
      EXPECT_GT((y_ref == 0).sum().item<int64_t>(), y_ref.numel() / 4)
          << "the ReLU must cut a good share of the outputs";
      EXPECT_LT(relative_error(y.detach(), y_ref.detach()), kTolerance) << "bf16=" << bf16;
      EXPECT_LT(relative_error(fused_x, grad_x), kTolerance) << "bf16=" << bf16;
      EXPECT_LT(relative_error(fused_w, grad_w), kTolerance) << "bf16=" << bf16;
      if (with_bias) {
        EXPECT_LT(relative_error(fused_b, grad_b), kTolerance) << "bf16=" << bf16;
      }
    }
  }
}

// Where the input needs no gradient only W and b get one; doubles take LibTorch's path.
TEST(OnednnLinear, FrozenInputAndOtherDtypes) {
  torch::manual_seed(3);
  auto x = torch::randn({5, 6});
  auto w = torch::randn({4, 6}, torch::requires_grad());
  pelab::linear(x, w, torch::Tensor()).sum().backward();
  EXPECT_LT(relative_error(w.grad(), torch::ones({5}).matmul(x).unsqueeze(0).expand({4, 6})),
            kTolerance);
  auto xd = torch::randn({5, 6}, torch::kDouble), wd = torch::randn({4, 6}, torch::kDouble);
  auto yd = pelab::linear(xd, wd, torch::Tensor());
  EXPECT_EQ(yd.scalar_type(), torch::kDouble);
  EXPECT_LT(relative_error(yd, xd.matmul(wd.t())), 1e-12);
}

namespace {

ModelConfig model_config(const std::string& pe, const std::string& mask, bool fast) {
  ModelConfig m = test_fixtures::small_model_config(pe, mask);
  m.fused_attention = fast;
  m.onednn_linear = fast;
  return m;
}

struct ModelRun {
  torch::Tensor logits;
  std::vector<std::pair<std::string, torch::Tensor>> gradients;
};

ModelRun run_model(const ModelConfig& config, bool bf16, bool keys_from_embeddings = false) {
  ModelConfig c = config;
  if (keys_from_embeddings) c.kv_source = "embedding";
  torch::manual_seed(21);
  auto lengths = torch::tensor({13, 4, 9}, torch::kLong);
  auto valid = torch::arange(13).unsqueeze(0) < lengths.unsqueeze(1);
  auto tokens = torch::randint(1, 30, {3, 13}, torch::kLong) * valid.to(torch::kLong);
  auto labels = torch::tensor({0, 3, 2}, torch::kLong);
  torch::manual_seed(22);
  Transformer model(c, 30, 5, 13);
  {
    // Learned biases start at zero; give them values so their gradients mean something.
    torch::NoGradGuard no_grad;
    for (auto& p : model->named_parameters())
      if (p.key().find("pe.") == 0) p.value().normal_(0, 0.5);
  }
  const Bf16ProductsGuard precision(bf16);
  ModelRun run;
  run.logits = model->forward(tokens, lengths);
  torch::nn::functional::cross_entropy(run.logits, labels).backward();
  run.logits = run.logits.detach();
  for (const auto& p : model->named_parameters())
    run.gradients.emplace_back(p.key(), p.value().grad());
  return run;
}

void expect_close(const ModelRun& actual, const ModelRun& reference, double tolerance,
                  const std::string& label) {
  EXPECT_LT(relative_error(actual.logits, reference.logits), tolerance) << label;
  ASSERT_EQ(actual.gradients.size(), reference.gradients.size()) << label;
  for (size_t i = 0; i < reference.gradients.size(); ++i) {
    const auto& [name, expected] = reference.gradients[i];
    ASSERT_EQ(actual.gradients[i].first, name) << label;
    const auto& got = actual.gradients[i].second;
    ASSERT_TRUE(got.defined() && expected.defined()) << label << " " << name;
    // key.bias's and FIRE's output bias b2's true gradients are zero (each shifts every logit of
    // a query's row alike, which softmax ignores), so their norms are rounding noise: errors
    // there are measured against 1e-2 instead.
    const double diff = (got - expected).norm().item<double>();
    EXPECT_LT(diff / std::max(expected.norm().item<double>(), 1e-2), tolerance)
        << label << " " << name;
  }
}

}  // namespace

// Fused attention + oneDNN linear layers (q, k and v in one product) against explicit attention
// + at::linear: logits and every parameter gradient, every PE in the registry, every mask, keys
// from the residual stream and from the embeddings (separate products).
TEST(OnednnLinear, WholeModelMatchesExplicitPathForEveryPeAndMask) {
  for (const auto& pe : pe_names()) {
    for (const std::string mask : {"none", "padding", "causal"}) {
      for (bool from_embeddings : {false, true}) {
        const std::string label =
            pe + " mask=" + mask + (from_embeddings ? " kv=embedding" : " kv=residual");
        const auto fast = run_model(model_config(pe, mask, true), false, from_embeddings);
        const auto reference = run_model(model_config(pe, mask, false), false, from_embeddings);
        expect_close(fast, reference, kTolerance, label);
      }
    }
  }
}

// MLA's packed projections (one product per input, split_packed_heads) and its one-pass
// [content | rotary] heads against separate at::linear layers and torch::cat, in each variant
// of the query path: with and without a query latent, one rotary query shared by every head
// (the authors') or one per head, keys from the residual stream and from the embeddings.
TEST(OnednnLinear, MlaPackedProjectionsMatchSeparateLayersInEveryVariant) {
  for (int64_t query_latent : {0, 10}) {
    for (bool shared_rotary_query : {true, false}) {
      for (bool from_embeddings : {false, true}) {
        const std::string label = "mla q_latent=" + std::to_string(query_latent) +
                                  (shared_rotary_query ? " shared" : " per-head") +
                                  (from_embeddings ? " kv=embedding" : " kv=residual");
        ModelConfig fast = model_config("mla", "padding", true),
                    reference = model_config("mla", "padding", false);
        for (ModelConfig* m : {&fast, &reference}) {
          m->mla_q_latent = query_latent;
          m->mla_shared_rotary_query = shared_rotary_query;
        }
        expect_close(run_model(fast, false, from_embeddings),
                     run_model(reference, false, from_embeddings), kTolerance, label);
      }
    }
  }
}

// bf16 mixed precision: bf16 operands in the products, float32 everywhere else. Against the
// float32 path within the bf16 tolerance, and visibly not float32 (the products did round).
TEST(OnednnLinear, Bf16WholeModelMatchesFloat32WithinItsTolerance) {
  if (!bf16_products_here()) GTEST_SKIP() << "no AVX512_BF16 or no oneDNN";
  for (const std::string pe : {"rope", "alibi", "mla", "nope"}) {
    const auto bf16 = run_model(model_config(pe, "padding", true), true);
    const auto fp32 = run_model(model_config(pe, "padding", true), false);
    expect_close(bf16, fp32, kBf16ModelTolerance, pe + " bf16");
    EXPECT_GT(relative_error(bf16.logits, fp32.logits), 1e-6) << pe << ": bf16 had no effect";
  }
}

TEST(OnednnLinear, Bf16ProductsMatchDoubleWithinTheirTolerance) {
  if (!bf16_products_here()) GTEST_SKIP() << "no AVX512_BF16 or no oneDNN";
  torch::manual_seed(4);
  // 600 rows: the bias gradient's column sums run in chunks of 256 rows, the last one partial.
  auto x = torch::randn({600, 48}, torch::requires_grad());
  auto w = torch::randn({36, 48}, torch::requires_grad());
  auto b = torch::randn({36}, torch::requires_grad());
  auto upstream = torch::randn({600, 36});
  {
    const Bf16ProductsGuard bf16;
    EXPECT_TRUE(bf16_products_enabled());
    (pelab::linear(x, w, b) * upstream).sum().backward();
  }
  EXPECT_FALSE(bf16_products_enabled());  // the guard restores float32
  auto xd = x.detach().to(torch::kDouble), wd = w.detach().to(torch::kDouble);
  auto ud = upstream.to(torch::kDouble);
  EXPECT_LT(relative_error(x.grad(), ud.matmul(wd)), kBf16Tolerance);
  EXPECT_LT(relative_error(w.grad(), ud.t().matmul(xd)), kBf16Tolerance);
  EXPECT_LT(relative_error(b.grad(), ud.sum(0)), 1e-6);  // the bias gradient stays float32
  EXPECT_EQ(w.grad().scalar_type(), torch::kFloat);      // float32 master weights and gradients
}

TEST(OnednnLinear, Bf16RefusalNamesTheMissingPiece) {
  EXPECT_EQ(bf16_unsupported_reason(true, true), "");
  EXPECT_NE(bf16_unsupported_reason(false, true).find("AVX512_BF16"), std::string::npos);
  EXPECT_NE(bf16_unsupported_reason(false, true).find("train.precision"), std::string::npos);
  EXPECT_NE(bf16_unsupported_reason(true, false).find("oneDNN"), std::string::npos);
  if (!bf16_products_here()) {
    EXPECT_THROW(Bf16ProductsGuard{true}, ConfigError);
  }
  EXPECT_NO_THROW(Bf16ProductsGuard{false});
}

TEST(OnednnLinear, PrecisionKeyAcceptsFp32AndBf16Only) {
  EXPECT_EQ(load_config({}, {}).train.precision, "fp32");
  EXPECT_EQ(load_config({}, {"train.precision=bf16"}).train.precision, "bf16");
  try {
    load_config({}, {"train.precision=fp16"});
    FAIL() << "fp16 accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("bf16"), std::string::npos) << e.what();
  }
}

// Hessian-vector products (analysis) differentiate the backward pass, which oneDNN's is not:
// the explicit path takes at::linear too, so a model built with oneDNN layers gives the same
// second derivatives as one built without.
TEST(OnednnLinear, ExplicitPathIsTwiceDifferentiable) {
  torch::manual_seed(31);
  auto lengths = torch::tensor({9, 5}, torch::kLong);
  auto tokens = torch::randint(1, 30, {2, 9}, torch::kLong);
  auto labels = torch::tensor({1, 4}, torch::kLong);
  std::vector<torch::Tensor> products;
  for (bool onednn : {true, false}) {
    auto config = model_config("rope", "padding", true);
    config.onednn_linear = onednn;
    torch::manual_seed(32);
    Transformer model(config, 30, 5, 9);
    ForwardOptions options;
    options.explicit_attention = true;
    auto loss =
        torch::nn::functional::cross_entropy(model->forward(tokens, lengths, options), labels);
    auto params = model->parameters();
    auto grads = torch::autograd::grad({loss}, params, {}, true, true);
    torch::manual_seed(33);
    torch::Tensor dot = torch::zeros({});
    for (size_t i = 0; i < params.size(); ++i)
      dot = dot + (grads[i] * torch::randn_like(grads[i])).sum();
    auto hv = torch::autograd::grad({dot}, params, {}, false, true);
    std::vector<torch::Tensor> flat;
    for (auto& h : hv) flat.push_back(h.defined() ? h.flatten() : torch::zeros({0}));
    products.push_back(torch::cat(flat));
  }
  EXPECT_LT(relative_error(products[0], products[1]), kTolerance);
  EXPECT_GT(products[1].norm().item<double>(), 0);
}
