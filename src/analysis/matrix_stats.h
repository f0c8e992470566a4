// Matrix facts shared by the logit decomposition and the spectral analysis: the nearest Toeplitz
// matrix, spectra and condition numbers. Everything here works in float64.
#pragma once

#include <torch/torch.h>

#include <optional>

namespace pelab {

// The Toeplitz matrix nearest to m [n, n] in Frobenius norm: each diagonal replaced by its mean
// (the orthogonal projection onto the Toeplitz subspace).
torch::Tensor nearest_toeplitz(const torch::Tensor& m);
// ||m - nearest_toeplitz(m)||_F / ||m||_F (0 for the zero matrix).
double toeplitz_distance(const torch::Tensor& m);

// Eigenvalues of the symmetric (Hermitian) part (m + m^H) / 2, ascending, float64.
torch::Tensor symmetric_eigenvalues(const torch::Tensor& m);
// Singular values, descending, float64.
torch::Tensor singular_values(const torch::Tensor& m);

// lambda_max / lambda_min of a spectrum of a PSD matrix; nullopt when lambda_min <= tol *
// lambda_max (numerically singular). Spectrum in any order.
std::optional<double> psd_condition_number(const torch::Tensor& eigenvalues, double tol = 1e-10);
// sigma_max / sigma_min (nullopt when singular), from singular values in any order.
std::optional<double> condition_from_singular_values(const torch::Tensor& sv, double tol = 1e-10);
// exp(entropy of sigma / sum sigma): the number of singular values that matter.
double effective_rank(const torch::Tensor& sv);

}  // namespace pelab
