// The RoPE family (rotary primitives, rope, rope_abs, mla's rotary channel) against independent
// references: the pairwise rotation and the complex-number logit written as double loops here.
#include <gtest/gtest.h>

#include <cmath>
#include <complex>
#include <functional>

#include "pe/pe.h"
#include "pe/rotary.h"
#include "pe_fixture.h"

using namespace pelab;

using pelab::test_fixtures::head_logit;
using pelab::test_fixtures::kPeMaxLen;
using pelab::test_fixtures::small_pe;

namespace {

// Re sum_t q^(t) conj(k^(t)) e^{i (i - j) theta_t} over the first `dims` dims, theta_t =
// base^(-2t/dims), for unrotated q (position i) and k (position j).
double complex_logit(const torch::Tensor& q, const torch::Tensor& k, int64_t h, int64_t i,
                     int64_t j, int64_t dims, double base) {
  std::complex<double> sum = 0;
  for (int64_t t = 0; t < dims / 2; ++t) {
    const double theta = std::pow(base, -2.0 * double(t) / double(dims));
    std::complex<double> qc(q[0][h][i][2 * t].item<double>(), q[0][h][i][2 * t + 1].item<double>());
    std::complex<double> kc(k[0][h][j][2 * t].item<double>(), k[0][h][j][2 * t + 1].item<double>());
    sum += qc * std::conj(kc) * std::polar(1.0, double(i - j) * theta);
  }
  return sum.real();
}

// T_ij = mean_t cos((i - j) theta_t) by a double loop.
double kernel_entry(int64_t i, int64_t j, int64_t dims, double base) {
  double sum = 0;
  for (int64_t t = 0; t < dims / 2; ++t)
    sum += std::cos(double(i - j) * std::pow(base, -2.0 * double(t) / double(dims)));
  return sum / double(dims / 2);
}

void expect_unit_diagonal_psd_toeplitz(const torch::Tensor& T, const std::string& what) {
  const int64_t n = T.size(0);
  for (int64_t i = 0; i < n; ++i) EXPECT_NEAR(T[i][i].item<double>(), 1.0, 1e-12) << what;
  for (int64_t i = 1; i < n; ++i)
    for (int64_t j = 1; j < n; ++j)
      EXPECT_NEAR(T[i][j].item<double>(), T[i - 1][j - 1].item<double>(), 1e-12) << what;
  EXPECT_TRUE(torch::equal(T, T.t())) << what;
  EXPECT_GE(torch::linalg::eigvalsh(T, "L").min().item<double>(), -1e-10) << what;
}

}  // namespace

TEST(Rotary, FrequenciesAreClosedForm) {
  auto theta = rope_frequencies(12, 500.0);
  ASSERT_EQ(theta.sizes(), (std::vector<int64_t>{6}));
  EXPECT_EQ(theta.scalar_type(), torch::kDouble);
  for (int t = 0; t < 6; ++t)
    EXPECT_DOUBLE_EQ(theta[t].item<double>(), std::pow(500.0, -2.0 * t / 12.0));
}

TEST(Rotary, ApplyRotaryMatchesPairwiseLoopAndPassesTrailingDims) {
  const int64_t L = 6, D = 10, rotary = 6;
  auto theta = rope_frequencies(rotary, 100.0);
  auto x = torch::randn({2, 3, L, D});
  auto pos = torch::tensor({0, 3, 4, 9, 20, 127}, torch::kLong);
  auto y = apply_rotary(x, pos, theta);
  EXPECT_EQ(y.scalar_type(), torch::kFloat);
  ASSERT_EQ(y.sizes(), x.sizes());
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t h = 0; h < 3; ++h)
      for (int64_t l = 0; l < L; ++l) {
        const double p = double(pos[l].item<int64_t>());
        for (int64_t t = 0; t < rotary / 2; ++t) {
          const double a = p * std::pow(100.0, -2.0 * double(t) / double(rotary));
          const double x0 = x[b][h][l][2 * t].item<double>(),
                       x1 = x[b][h][l][2 * t + 1].item<double>();
          EXPECT_NEAR(y[b][h][l][2 * t].item<double>(), x0 * std::cos(a) - x1 * std::sin(a), 1e-5);
          EXPECT_NEAR(y[b][h][l][2 * t + 1].item<double>(), x0 * std::sin(a) + x1 * std::cos(a),
                      1e-5);
        }
      }
  EXPECT_TRUE(torch::equal(y.narrow(-1, rotary, D - rotary), x.narrow(-1, rotary, D - rotary)));
}

// The heads of a packed q/k/v product are a strided [B, H, L, D] view; the rotation reads it
// through its strides. Same values and gradients as on a contiguous copy, fully and partly
// rotated, and against the pairwise formula in double precision.
TEST(Rotary, StridedHeadViewsRotateLikeContiguousOnes) {
  const int64_t B = 2, H = 3, L = 7, D = 8;
  auto pos = torch::arange(L, torch::kLong) * 2;
  for (const int64_t rotary : {D, int64_t(4)}) {
    auto theta = rope_frequencies(rotary, 100.0);
    auto packed = torch::randn({B, L, 3 * H * D});
    // k's heads: [B, L, H, D] inside the packed row, seen as [B, H, L, D].
    auto view = packed.narrow(2, H * D, H * D).view({B, L, H, D}).transpose(1, 2);
    ASSERT_FALSE(view.is_contiguous());
    auto strided = view.detach().requires_grad_(true);
    auto copy = view.detach().contiguous().requires_grad_(true);
    auto upstream = torch::randn({B, H, L, D});
    auto y_strided = apply_rotary(strided, pos, theta);
    auto y_copy = apply_rotary(copy, pos, theta);
    EXPECT_TRUE(torch::equal(y_strided, y_copy)) << "rotary " << rotary;
    (y_strided * upstream).sum().backward();
    (y_copy * upstream).sum().backward();
    EXPECT_TRUE(torch::equal(strided.grad(), copy.grad())) << "rotary " << rotary;
    auto expected = apply_rotary(view.to(torch::kDouble), pos, theta);
    EXPECT_TRUE(torch::allclose(y_strided.to(torch::kDouble), expected, 1e-5, 1e-5));
  }
}

TEST(Rotary, IsDifferentiableWithTheInverseRotationAsGradient) {
  // y = R(p) x is orthogonal, so d/dx sum(w o y) = R(p)^T w = R(-p) w.
  auto theta = rope_frequencies(8, 10000.0);
  auto x = torch::randn({1, 2, 5, 8}, torch::kDouble).requires_grad_(true);
  auto w = torch::randn({1, 2, 5, 8}, torch::kDouble);
  auto pos = torch::arange(5, torch::kLong) * 3;
  (apply_rotary(x, pos, theta) * w).sum().backward();
  EXPECT_TRUE(torch::allclose(x.grad(), apply_rotary(w, -pos, theta), 1e-12, 1e-12));
  // Norms of every pair are preserved.
  auto y = apply_rotary(x.detach(), pos, theta).view({1, 2, 5, 4, 2});
  EXPECT_TRUE(torch::allclose(y.norm(2, -1), x.detach().view({1, 2, 5, 4, 2}).norm(2, -1)));
}

TEST(Rope, LogitsMatchComplexFormulaAndDependOnlyOnOffset) {
  auto pe = small_pe("rope", [](ModelConfig& m) { m.rope_base = 100.0; });
  EXPECT_EQ(pe->kind(), PeKind::kRotary);
  EXPECT_TRUE(pe->parameters().empty());
  const int64_t L = 9, D = 8;
  auto q = torch::randn({1, 4, L, D}, torch::kDouble);
  auto k = torch::randn({1, 4, L, D}, torch::kDouble);
  auto pos = torch::arange(L, torch::kLong);
  auto [qr, kr] = pe->rotate(q, k, pos);
  auto [qs, ks] = pe->rotate(q, k, pos + 17);
  for (int64_t h = 0; h < 4; ++h)
    for (int64_t i = 0; i < L; ++i)
      for (int64_t j = 0; j < L; ++j) {
        const double expected = complex_logit(q, k, h, i, j, D, 100.0);
        EXPECT_NEAR(head_logit(qr, kr, h, i, j), expected, 1e-10);
        EXPECT_NEAR(head_logit(qs, ks, h, i, j), expected, 1e-10);  // both shifted: same logit
      }
}

TEST(Rope, PartialHeadsAndFractionLeaveTheRestBitIdentical) {
  auto pe = small_pe("rope", [](ModelConfig& m) {
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
  EXPECT_TRUE(torch::equal(head0.select(1, 0), q.select(1, 0).select(1, 0)));  // position 0
  // Head 0 rotates its first 4 dims with theta_t = base^(-2t/4): the complex formula on 4 dims
  // plus the plain dot product of dims 4..7.
  auto qd = q.to(torch::kDouble), kd = k.to(torch::kDouble);
  for (int64_t i = 0; i < 6; ++i)
    for (int64_t j = 0; j < 6; ++j) {
      const double tail =
          (qd[0][0][i].narrow(0, 4, 4) * kd[0][0][j].narrow(0, 4, 4)).sum().item<double>();
      EXPECT_NEAR(head_logit(qr, kr, 0, i, j), complex_logit(qd, kd, 0, i, j, 4, 10000.0) + tail,
                  1e-4);
    }
  auto K = pe->kernel(5, 0);
  ASSERT_EQ(K.sizes(), (std::vector<int64_t>{1, 5, 5}));  // one rotated head
  for (int64_t i = 0; i < 5; ++i)
    for (int64_t j = 0; j < 5; ++j)
      EXPECT_NEAR(K[0][i][j].item<double>(), kernel_entry(i, j, 4, 10000.0), 1e-12);

  auto none = small_pe("rope", [](ModelConfig& m) { m.rotary_heads = 0; });
  auto [qn, kn] = none->rotate(q, k, torch::arange(6, torch::kLong));
  EXPECT_TRUE(torch::equal(qn, q));
  EXPECT_TRUE(torch::equal(kn, k));
  EXPECT_EQ(none->kernel(5, 0).size(0), 0);
  EXPECT_EQ(small_pe("rope", [](ModelConfig& m) { m.rotary_heads = 3; })->kernel(5, 0).size(0), 3);
}

TEST(Rope, KernelMatchesLoopAndIsUnitDiagonalPsdToeplitz) {
  // The authors' geometry: 16 heads of 16 dims.
  auto pe = small_pe("rope", [](ModelConfig& m) {
    m.d_model = 256;
    m.n_heads = 16;
  });
  const int64_t n = 48;
  auto K = pe->kernel(n, 3);
  ASSERT_EQ(K.sizes(), (std::vector<int64_t>{16, n, n}));
  EXPECT_EQ(K.scalar_type(), torch::kDouble);
  for (int64_t i = 0; i < n; i += 5)
    for (int64_t j = 0; j < n; j += 3)
      EXPECT_NEAR(K[7][i][j].item<double>(), kernel_entry(i, j, 16, 10000.0), 1e-12);
  EXPECT_TRUE(torch::equal(K[0], K[15]));
  expect_unit_diagonal_psd_toeplitz(K[0], "rope");
  for (const std::string name : {"rope_abs", "mla"})
    expect_unit_diagonal_psd_toeplitz(small_pe(name)->kernel(24, 0)[0], name);
}

TEST(RopeAbs, AddsTheSinusoidalTableAndRotatesLikeRope) {
  auto pe = small_pe("rope_abs", [](ModelConfig& m) { m.rotary_heads = 2; });
  auto rope = small_pe("rope", [](ModelConfig& m) { m.rotary_heads = 2; });
  EXPECT_EQ(pe->kind(), PeKind::kRotaryAbsolute);
  EXPECT_TRUE(pe->parameters().empty());
  EXPECT_TRUE(torch::equal(pe->embedding(12), small_pe("sinusoidal")->embedding(12)));
  auto q = torch::randn({1, 4, 5, 8}), k = torch::randn({1, 4, 5, 8});
  auto pos = torch::arange(5, torch::kLong);
  auto [a, b] = pe->rotate(q, k, pos);
  auto [c, d] = rope->rotate(q, k, pos);
  EXPECT_TRUE(torch::equal(a, c));
  EXPECT_TRUE(torch::equal(b, d));
  EXPECT_TRUE(torch::equal(pe->kernel(10, 0), rope->kernel(10, 0)));
  EXPECT_EQ(pe->bias(5, 0).defined(), false);
}

TEST(MlaPe, RotatesTheWholeChannelRelativelyAndPreservesNorms) {
  auto pe = small_pe("mla", [](ModelConfig& m) { m.rope_base = 50.0; });
  EXPECT_EQ(pe->kind(), PeKind::kLatentAttention);
  EXPECT_TRUE(pe->parameters().empty());
  const int64_t L = 7, dR = 8;
  auto q = torch::randn({2, 4, L, dR}, torch::kDouble);
  auto k = torch::randn({2, 1, L, dR}, torch::kDouble);  // one rotary key shared by all heads
  auto pos = torch::arange(L, torch::kLong);
  auto [qa, ka] = pe->rotate(q, k, pos);
  auto [qb, kb] = pe->rotate(q, k, pos + 5);
  auto la = torch::matmul(qa, ka.transpose(-2, -1)), lb = torch::matmul(qb, kb.transpose(-2, -1));
  EXPECT_LT((la - lb).abs().max().item<double>(), 1e-10);
  EXPECT_TRUE(torch::allclose(qa.norm(2, -1), q.norm(2, -1), 1e-12, 1e-12));
  EXPECT_TRUE(torch::allclose(ka.norm(2, -1), k.norm(2, -1), 1e-12, 1e-12));
  // Every head against the shared key: the complex formula over all d_R dims.
  auto kb0 = k.expand({2, 4, L, dR});
  for (int64_t h : {0, 3})
    for (int64_t i = 0; i < L; ++i)
      for (int64_t j = 0; j < L; ++j)
        EXPECT_NEAR(la[0][h][i][j].item<double>(), complex_logit(q, kb0, h, i, j, dR, 50.0), 1e-10);
  auto K = pe->kernel(9, 0);
  ASSERT_EQ(K.sizes(), (std::vector<int64_t>{1, 9, 9}));
  for (int64_t i = 0; i < 9; ++i)
    for (int64_t j = 0; j < 9; ++j)
      EXPECT_NEAR(K[0][i][j].item<double>(), kernel_entry(i, j, dR, 50.0), 1e-12);
  EXPECT_THROW(pe->rotate(torch::randn({1, 4, L, 6}), torch::randn({1, 1, L, 6}), pos), c10::Error);
}
