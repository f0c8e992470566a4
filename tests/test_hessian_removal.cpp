#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "analysis/hessian.h"
#include "analysis/removal.h"
#include "analysis/training_probe.h"
#include "fixtures.h"

using namespace pelab;
namespace fs = std::filesystem;

namespace {

double norm_of(const std::vector<torch::Tensor>& v) {
  double s = 0;
  for (const auto& t : v) s += t.pow(2).sum().item<double>();
  return std::sqrt(s);
}

// A model small enough for its whole Hessian: d_model 4, one head, one layer.
test_fixtures::TrainedModel micro_model() {
  auto t = test_fixtures::briefly_trained(
      "rope", {"model.d_model=4", "model.n_heads=1", "model.d_ff=4", "model.n_layers=1",
               "task.vocab_size=12", "task.samples=24"});
  t.model->to(torch::kDouble);
  return t;
}

}  // namespace

// H v against central finite differences of the gradient, in double precision.
TEST(Hessian, VectorProductMatchesFiniteDifferencesOfTheGradient) {
  for (const std::string pe : {"rope", "alibi", "sinusoidal"}) {
    auto t = test_fixtures::briefly_trained(pe, {"task.samples=32"});
    t.model->to(torch::kDouble);
    std::vector<torch::Tensor> v;
    for (auto& p : t.model->parameters()) v.push_back(torch::randn_like(p));
    const double scale = 1.0 / norm_of(v);
    for (auto& x : v) x *= scale;
    std::vector<torch::Tensor> hv;
    {
      LossHessian h(t.model, t.data);
      hv = h.product(v);
    }
    const double eps = 1e-5;
    auto shift = [&](double sign) {
      torch::NoGradGuard no_grad;
      auto params = t.model->parameters();
      for (std::size_t i = 0; i < params.size(); ++i) params[i].add_(v[i] * (sign * eps));
    };
    shift(+1);
    auto g_plus = loss_gradient(t.model, t.data);
    shift(-2);
    auto g_minus = loss_gradient(t.model, t.data);
    shift(+1);
    double diff = 0, ref = 0;
    for (std::size_t i = 0; i < hv.size(); ++i) {
      auto fd = (g_plus[i] - g_minus[i]) / (2 * eps);
      diff += (fd - hv[i]).pow(2).sum().item<double>();
      ref += fd.pow(2).sum().item<double>();
    }
    EXPECT_LT(std::sqrt(diff / ref), 1e-6) << pe;
    EXPECT_GT(ref, 0) << pe;
  }
}

// Power iteration against the eigenvalues of the full Hessian, built column by column.
TEST(Hessian, PowerIterationFindsTheLargestEigenvalue) {
  auto t = micro_model();
  LossHessian h(t.model, t.data);
  const auto& params = h.parameters();
  int64_t total = 0;
  for (const auto& p : params) total += p.numel();
  ASSERT_LT(total, 2000);
  auto full = torch::zeros({total, total}, torch::kDouble);
  for (int64_t c = 0; c < total; ++c) {
    std::vector<torch::Tensor> e;
    int64_t offset = 0;
    for (const auto& p : params) {
      auto z = torch::zeros({p.numel()}, torch::kDouble);
      if (c >= offset && c < offset + p.numel()) z[c - offset] = 1;
      e.push_back(z.view(p.sizes()));
      offset += p.numel();
    }
    std::vector<torch::Tensor> flat;
    for (auto& x : h.product(e)) flat.push_back(x.flatten());
    full.select(1, c).copy_(torch::cat(flat));
  }
  EXPECT_LT((full - full.t()).abs().max().item<double>(), 1e-8);  // a Hessian is symmetric
  const auto ev = torch::linalg::eigvalsh((full + full.t()) / 2, "L");
  const double top = std::max(std::abs(ev[0].item<double>()), std::abs(ev[-1].item<double>()));
  const auto power = top_hessian_eigenvalue(t.model, t.data, 300, 1);
  EXPECT_NEAR(std::abs(power.eigenvalue), top, 0.02 * top);
}

// Removing p_i before layer 0 is the same as a model whose PE adds nothing.
TEST(Removal, LayerZeroEqualsAModelWithoutItsPositionalTable) {
  auto t = test_fixtures::briefly_trained("sinusoidal");
  const auto r = remove_positional_component(t.model, t.data, 3, 0, 40);
  ASSERT_EQ(r.layers.size(), 2u);
  for (const auto& l : r.layers) EXPECT_EQ(l.accuracy_without_random.size(), 3u);
  {
    torch::NoGradGuard no_grad;
    for (auto& b : t.model->pe->named_buffers()) b.value().zero_();
  }
  t.model->eval();
  torch::NoGradGuard no_grad;
  const auto hits = t.model->forward(t.data.tokens, t.data.lengths).argmax(-1).eq(t.data.labels);
  EXPECT_DOUBLE_EQ(r.layers[0].accuracy_without_position,
                   hits.sum().item<double>() / double(t.data.size()));
}

TEST(Removal, RefusesAModelWithoutAnAbsolutePe) {
  auto t = test_fixtures::briefly_trained("rope");
  EXPECT_THROW(remove_positional_component(t.model, t.data, 2, 0, 40), ConfigError);
}

// Tracking must not change the run: same numbers with and without, and the analysis is stored.
TEST(TrainingProbe, RecordsSpectraWithoutChangingTraining) {
  Config config = load_config(
      std::string(PELAB_SOURCE_DIR) + "/configs/tiny.toml",
      {"train.epochs=2", "task.samples=128", "train.threads=1", "model.dropout=0.1",
       "train.track_spectra=true", "train.track_samples=8", "train.hessian_iterations=3"});
  TrainOptions quiet;
  quiet.progress = false;
  quiet.quiet = true;
  TrainOptions tracked = quiet;
  tracked.epoch_probe = [](Transformer& m, const DatasetSplit& s, const Config& c) {
    return training_probe(m, s, c.train);
  };
  const fs::path a = fs::path(::testing::TempDir()) / "pelab_probe_a";
  const fs::path b = fs::path(::testing::TempDir()) / "pelab_probe_b";
  fs::remove_all(a);
  fs::remove_all(b);
  train_new_run(config, a, tracked);
  train_new_run(config, b, quiet);
  const auto ha = load_checkpoint(checkpoint_path(a)).history;
  const auto hb = load_checkpoint(checkpoint_path(b)).history;
  ASSERT_EQ(ha.size(), 2u);
  for (std::size_t e = 0; e < ha.size(); ++e) {
    EXPECT_EQ(ha[e].train_loss, hb[e].train_loss);
    EXPECT_EQ(ha[e].test_loss, hb[e].test_loss);
    ASSERT_TRUE(ha[e].analysis.contains("hessian_top_eigenvalue"));
    EXPECT_TRUE(std::isfinite(ha[e].analysis["hessian_top_eigenvalue"].get<double>()));
    EXPECT_EQ(ha[e].analysis["logit_spectra"].size(), 2u);
    EXPECT_TRUE(hb[e].analysis.is_null());
  }
}

// Float32 models take the fused kernel in training, but Hessian products must not: the fused
// backward is not differentiable, so a product through it would be wrong (or fail).
TEST(Hessian, FusedModelsGiveTheSameProductsAsTheExplicitPath) {
  auto fused = test_fixtures::briefly_trained("rope", {"model.fused_attention=true"});
  auto plain = test_fixtures::briefly_trained("rope", {"model.fused_attention=false"});
  {
    torch::NoGradGuard no_grad;
    auto a = fused.model->parameters(), b = plain.model->parameters();
    for (std::size_t i = 0; i < a.size(); ++i) b[i].copy_(a[i]);
  }
  std::vector<torch::Tensor> v;
  for (auto& p : fused.model->parameters()) v.push_back(torch::randn_like(p));
  std::vector<torch::Tensor> hf, hp;
  {
    LossHessian h(fused.model, fused.data);
    hf = h.product(v);
  }
  {
    LossHessian h(plain.model, fused.data);
    hp = h.product(v);
  }
  double diff = 0, ref = 0;
  for (std::size_t i = 0; i < hf.size(); ++i) {
    diff += (hf[i] - hp[i]).pow(2).sum().item<double>();
    ref += hp[i].pow(2).sum().item<double>();
  }
  EXPECT_GT(ref, 0);
  EXPECT_LT(std::sqrt(diff / ref), 1e-4);
}
