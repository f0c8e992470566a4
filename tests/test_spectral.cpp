#include <gtest/gtest.h>

#include <cmath>

#include "analysis/matrix_stats.h"
#include "analysis/spectral.h"
#include "analysis/spectrum_study.h"
#include "fixtures.h"

using namespace pelab;

namespace {

torch::Tensor toeplitz_from(const std::function<double(int64_t)>& b, int64_t n) {
  auto m = torch::empty({n, n}, torch::kDouble);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) m[i][j] = b(i - j);
  return m;
}

PositionalEncodingPtr pe_named(const std::string& name,
                               const std::vector<std::string>& extra = {}) {
  std::vector<std::string> overrides{"model.pe=" + name};
  overrides.insert(overrides.end(), extra.begin(), extra.end());
  const Config config = load_config("", overrides);
  return make_pe(PeOptions{config.model, 64});
}

}  // namespace

// A symmetric circulant matrix's eigenvalues are the DFT of its first row (a closed form).
TEST(Spectral, CirculantEigenvaluesMatchTheDft) {
  const int64_t n = 16;
  std::vector<double> row(n);
  for (int64_t k = 0; k < n; ++k) {
    const int64_t d = std::min(k, n - k);  // symmetric: c_k = c_{n-k}
    row[k] = std::exp(-0.3 * double(d)) + 0.5 * std::cos(2 * M_PI * 3 * double(d) / double(n));
  }
  const auto c = toeplitz_from([&](int64_t off) { return row[((off % n) + n) % n]; }, n);
  std::vector<double> dft(n);
  for (int64_t m = 0; m < n; ++m)
    for (int64_t k = 0; k < n; ++k)
      dft[m] += row[k] * std::cos(2 * M_PI * double(m * k) / double(n));
  std::sort(dft.begin(), dft.end());
  const auto s = spectrum_of(c, "circulant", 0, 0);
  ASSERT_EQ(s.eigenvalues.size(0), n);
  for (int64_t i = 0; i < n; ++i) EXPECT_NEAR(s.eigenvalues[i].item<double>(), dft[i], 1e-10);
  EXPECT_TRUE(s.symmetric);
  EXPECT_LT(s.toeplitz_distance, 1e-14);
}

// E^(t) is Hermitian, rank one, unit diagonal: eigenvalues {n, 0, ..., 0}; T is PSD with unit
// diagonal and rank at most 2 * (number of frequencies).
TEST(Spectral, RopeKernelsHaveTheirClosedFormSpectra) {
  const auto pe = pe_named("rope", {"model.n_heads=4", "model.d_model=32"});  // 8 dims: 4 pairs
  const Config config = load_config("", {"model.pe=rope", "model.n_heads=4", "model.d_model=32"});
  const int64_t n = 24;
  const auto kernels = kernel_spectra(*pe, n, 2, pe_frequencies(config.model));
  int64_t e_count = 0;
  for (const auto& k : kernels) {
    if (k.name == "E") {
      ++e_count;
      EXPECT_TRUE(k.symmetric);
      EXPECT_NEAR(k.eigenvalues[-1].item<double>(), double(n), 1e-9);
      EXPECT_LT(k.eigenvalues.slice(0, 0, n - 1).abs().max().item<double>(), 1e-9);
    } else {
      ASSERT_EQ(k.name, "T");
      EXPECT_NEAR(k.min_diagonal, 1, 1e-12);
      EXPECT_NEAR(k.max_diagonal, 1, 1e-12);
      EXPECT_GT(k.eigenvalues[0].item<double>(), -1e-10);                // PSD
      EXPECT_NEAR(k.eigenvalues.sum().item<double>(), double(n), 1e-9);  // trace
      EXPECT_LE((k.eigenvalues > 1e-9).sum().item<int64_t>(), 2 * 4);
    }
  }
  EXPECT_EQ(e_count, 4);
}

// ALiBi's B = -m |i - j| is minus a distance matrix of points on a line: exactly one negative
// eigenvalue and n - 1 positive ones (the sign pattern the paper relies on).
TEST(Spectral, AlibiBiasHasOneNegativeEigenvalue) {
  const auto pe = pe_named("alibi", {"model.n_heads=4", "model.d_model=32"});
  const int64_t n = 40;
  const auto kernels = kernel_spectra(*pe, n, 1, torch::zeros({0}, torch::kDouble));
  ASSERT_EQ(kernels.size(), 4u);
  for (const auto& k : kernels) {
    EXPECT_EQ((k.eigenvalues < 0).sum().item<int64_t>(), 1);
    EXPECT_EQ((k.eigenvalues > 0).sum().item<int64_t>(), n - 1);
    EXPECT_NEAR(k.max_diagonal, 0, 1e-12);
  }
}

TEST(Spectral, SchurBoundsHoldOnRandomInstances) {
  const int64_t n = 20;
  auto generator = at::make_generator<at::CPUGeneratorImpl>(7);
  for (const auto& a : random_psd_matrices(n, 10, 3)) {
    // A PSD Toeplitz kernel with unit diagonal, and a PSD non-Toeplitz one with a varied diagonal.
    const auto t = toeplitz_from([](int64_t d) { return std::exp(-0.2 * std::abs(double(d))); }, n);
    auto x = at::normal(0.0, 1.0, {n, 3}, generator, torch::TensorOptions(torch::kDouble));
    const auto b = torch::matmul(x, x.t());
    for (const auto& kernel : {t, b}) {
      const auto c = schur_check(a, kernel);
      EXPECT_TRUE(c.bound_holds);
      // Recompute by hand.
      const auto ev = torch::linalg::eigvalsh(a * kernel, "L");
      EXPECT_GE(ev.min().item<double>(), c.bound_low - 1e-9);
      EXPECT_LE(ev.max().item<double>(), c.bound_high + 1e-9);
      EXPECT_NEAR(c.lambda_max_coupled, ev.max().item<double>(), 1e-10);
    }
    // Unit diagonal: the spectrum stays inside A's, so the condition number cannot grow.
    const auto c = schur_check(a, t);
    ASSERT_TRUE(c.contraction_ratio.has_value());
    EXPECT_LE(*c.contraction_ratio, 1 + 1e-9);
  }
}

TEST(Spectral, ACheckDetectsAViolatedBound) {
  // The kernel is not PSD, so Schur's theorem does not apply: A o K = K has eigenvalues -1 and 3,
  // outside [lambda_min(A), lambda_max(A)] = [0, 2]. The check must say so.
  const auto a = torch::ones({2, 2}, torch::kDouble);
  const auto kernel = torch::tensor({{1.0, 2.0}, {2.0, 1.0}}, torch::kDouble);
  const auto c = schur_check(a, kernel);
  EXPECT_FALSE(c.bound_holds);
  EXPECT_NEAR(c.lambda_min_coupled, -1, 1e-12);
  EXPECT_NEAR(c.bound_high, 2, 1e-12);
}

TEST(Spectral, WeylBoundsHoldForBiasKernels) {
  const auto pe = pe_named("alibi", {"model.n_heads=4", "model.d_model=32"});
  const int64_t n = 30;
  const auto b = pe->kernel(n, 0);
  for (const auto& a : random_psd_matrices(n, 4, 11))
    for (int64_t h = 0; h < b.size(0); ++h) EXPECT_TRUE(weyl_check(a, b[h]).bound_holds);
}

TEST(Spectral, TrainedStudyChecksEveryHeadAndHoldsForRope) {
  auto t = test_fixtures::briefly_trained("rope");
  SpectrumRequest request;
  request.positions = 16;
  request.draws = 2;
  request.model = &t.model;
  request.data = &t.data;
  request.samples = 2;
  const auto study = run_spectrum_study(*t.model->pe, t.config.model, request);
  const int64_t heads = t.config.model.n_heads, layers = t.config.model.n_layers;
  EXPECT_EQ(study.checks.size(), std::size_t(2 + 2 * layers * heads));
  for (const auto& c : study.checks) {
    EXPECT_EQ(c.kind, "schur");
    EXPECT_TRUE(c.bound_holds) << c.source;
  }
  EXPECT_EQ(study.logit_spectra.size(), std::size_t(layers * heads));
  for (const auto& s : study.logit_spectra) {
    EXPECT_GT(s.mean_effective_rank, 1.0);
    EXPECT_NEAR(s.mean_normalised_singular_values[0], 1.0, 1e-9);
  }
}

TEST(Spectral, EffectiveRankAndConditionNumbers) {
  EXPECT_NEAR(effective_rank(torch::tensor({1.0, 1.0, 1.0, 1.0}, torch::kDouble)), 4, 1e-12);
  EXPECT_NEAR(effective_rank(torch::tensor({1.0, 0.0, 0.0}, torch::kDouble)), 1, 1e-12);
  EXPECT_NEAR(*psd_condition_number(torch::tensor({0.5, 2.0}, torch::kDouble)), 4, 1e-12);
  EXPECT_FALSE(psd_condition_number(torch::tensor({0.0, 2.0}, torch::kDouble)).has_value());
}

// RoPE on no head (the k = 0 point of the k-heads curve) has no kernel to couple with.
TEST(Spectral, RopeOnNoHeadHasNoKernelAndNoChecks) {
  auto t = test_fixtures::briefly_trained("rope", {"model.rotary_heads=0"}, 0);
  SpectrumRequest request;
  request.positions = 12;
  request.draws = 2;
  request.model = &t.model;
  request.data = &t.data;
  request.samples = 1;
  const auto study = run_spectrum_study(*t.model->pe, t.config.model, request);
  EXPECT_TRUE(study.checks.empty());
  for (const auto& k : study.kernels) EXPECT_EQ(k.name, "E");
  EXPECT_FALSE(study.logit_spectra.empty());
}
