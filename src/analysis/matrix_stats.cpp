#include "analysis/matrix_stats.h"

#include <cmath>

namespace pelab {

torch::Tensor nearest_toeplitz(const torch::Tensor& m) {
  TORCH_CHECK(m.dim() == 2 && m.size(0) == m.size(1),
              "nearest_toeplitz: need a square matrix, got ", m.sizes());
  const auto n = m.size(0);
  const auto idx = torch::arange(n, torch::kLong);
  const auto offset = (idx.unsqueeze(1) - idx.unsqueeze(0) + (n - 1)).flatten();  // i - j + n - 1
  const auto values = m.to(torch::kDouble).flatten();
  auto sums = torch::zeros({2 * n - 1}, torch::kDouble).index_add_(0, offset, values);
  auto counts =
      torch::zeros({2 * n - 1}, torch::kDouble).index_add_(0, offset, torch::ones_like(values));
  return (sums / counts).index({offset}).view({n, n});
}

double toeplitz_distance(const torch::Tensor& m) {
  const auto d = m.to(torch::kDouble);
  const double norm = d.norm().item<double>();
  if (norm == 0) return 0;
  return (d - nearest_toeplitz(d)).norm().item<double>() / norm;
}

torch::Tensor symmetric_eigenvalues(const torch::Tensor& m) {
  auto d = m.is_complex() ? m.to(torch::kComplexDouble) : m.to(torch::kDouble);
  auto sym = (d + d.transpose(0, 1).conj()) / 2;
  return torch::linalg::eigvalsh(sym, "L");
}

torch::Tensor singular_values(const torch::Tensor& m) {
  return torch::linalg::svdvals(m.to(torch::kDouble), c10::nullopt);
}

std::optional<double> psd_condition_number(const torch::Tensor& eigenvalues, double tol) {
  const double hi = eigenvalues.max().item<double>(), lo = eigenvalues.min().item<double>();
  if (hi <= 0 || lo <= tol * hi) return std::nullopt;
  return hi / lo;
}

std::optional<double> condition_from_singular_values(const torch::Tensor& sv, double tol) {
  return psd_condition_number(sv, tol);
}

double effective_rank(const torch::Tensor& sv) {
  const auto s = sv.to(torch::kDouble);
  const double total = s.sum().item<double>();
  if (total <= 0) return 0;
  const auto p = s / total;
  const auto nonzero = p.masked_select(p > 0);
  return std::exp(-(nonzero * nonzero.log()).sum().item<double>());
}

}  // namespace pelab
