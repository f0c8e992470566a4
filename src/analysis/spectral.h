// Spectra (PAPER.md section 2): the positional kernels of a PE, the Schur and Weyl checks of how
// they act on content Gram matrices, and the singular-value spectra of trained logit matrices.
//
// Schur (multiplicative coupling, RoPE): for Hermitian A >= 0 and T >= 0, every eigenvalue of the
// Hadamard product A o T lies in [lambda_min(A) min_i T_ii, lambda_max(A) max_i T_ii].
// Weyl (additive bias B, symmetric part used): lambda_k(A) + lambda_min(B) <= lambda_k(A + B)
// <= lambda_k(A) + lambda_max(B), eigenvalues sorted alike.
// Condition numbers of possibly singular Gram matrices are taken on A's numerical rank r:
// kappa_r(M) = lambda_1(M) / lambda_r(M) (the ordinary condition number when A has full rank).
#pragma once

#include <torch/torch.h>

#include <optional>
#include <string>
#include <vector>

#include "model/transformer.h"
#include "tasks/task.h"

namespace pelab {

struct KernelSpectrum {
  std::string name;               // "B", "T", "E", "G_pp"
  int64_t layer = 0;              // layer the kernel belongs to (bias tables are per layer)
  int64_t index = 0;              // head (B), frequency t (E); 0 for T (shared by rotated heads)
  double theta = 0;               // E only: the frequency theta_t
  bool symmetric = true;          // K = K^H (eigenvalues are of the Hermitian part otherwise)
  torch::Tensor eigenvalues;      // ascending, float64
  torch::Tensor singular_values;  // descending, float64
  std::optional<double> condition_number;  // sigma_max / sigma_min; nullopt when singular
  double min_diagonal = 0, max_diagonal = 0;
  double toeplitz_distance = 0;
};

// Every kernel of `pe` for n positions: B of each head and layer (bias PEs), T once (shared by
// every rotated head) and E^(t) of each frequency (RoPE family; `theta` the frequencies), G_pp
// (absolute PEs).
std::vector<KernelSpectrum> kernel_spectra(const PositionalEncoding& pe, int64_t n, int64_t layers,
                                           const torch::Tensor& theta);
KernelSpectrum spectrum_of(const torch::Tensor& kernel, std::string name, int64_t layer,
                           int64_t index);

// One Schur (or Weyl) check of a content Gram matrix A against a kernel.
struct CouplingCheck {
  std::string source;  // "random draw 3", "run layer 0 head 2 sample 5"
  std::string kind;    // "schur" (A o T) or "weyl" (A + B)
  std::string kernel;  // which kernel, e.g. "T head 0", "B layer 0 head 3"
  int64_t rank = 0;    // numerical rank r of A
  double lambda_min_a = 0, lambda_max_a = 0;
  double lambda_min_coupled = 0, lambda_max_coupled = 0;
  double bound_low = 0, bound_high = 0;  // Schur: the interval; Weyl: the worst-case shifts
  bool bound_holds = false;
  std::optional<double> condition_a, condition_coupled;  // kappa_r
  std::optional<double> contraction_ratio;               // kappa_r(coupled) / kappa_r(A)
  torch::Tensor eigenvalues_a, eigenvalues_coupled;      // ascending, float64
};

// A (Hermitian PSD [n, n]) with kernel T: the Schur check; with bias B: the Weyl check.
CouplingCheck schur_check(const torch::Tensor& a, const torch::Tensor& kernel);
CouplingCheck weyl_check(const torch::Tensor& a, const torch::Tensor& bias);

// Random Wishart PSD matrices A = X X^T / (2n), X [n, 2n] standard normal, from `seed`.
std::vector<torch::Tensor> random_psd_matrices(int64_t n, int64_t draws, uint64_t seed);

// Content Gram matrices of a trained model: per sample, layer and head, A = Q Q^T / sqrt(d_h)
// with Q the head's unrotated queries over the sample's valid positions (PSD by construction).
struct TrainedGram {
  int64_t sample = 0, layer = 0, head = 0;
  torch::Tensor gram;  // float64 [length, length]
};
std::vector<TrainedGram> trained_content_grams(Transformer& model, const Dataset& data,
                                               int64_t samples);

// Singular-value statistics of a trained model's per-head logit matrices (valid positions,
// before the mask), averaged over the first `samples` sequences.
struct LogitSpectrumStats {
  int64_t layer = 0, head = 0;
  double mean_log10_condition = 0;  // of sigma_1 / sigma_n, singular matrices counted at 1e16
  // sigma_1 / sigma_k with k = min(n, d_qk), d_qk the query-key width of a head (head_dim, plus
  // mla_rope_dim for MLA): q k^T has rank at most d_qk, so without a bias the full condition
  // number only measures that rank deficiency; this one measures the spread that is left.
  double mean_log10_condition_within_rank = 0;
  double mean_effective_rank = 0;
  double mean_top_share = 0;                            // sigma_1 / sum sigma
  std::vector<double> mean_normalised_singular_values;  // sigma_k / sigma_1 at the shortest length
};
std::vector<LogitSpectrumStats> logit_spectra(Transformer& model, const Dataset& data,
                                              int64_t samples);

}  // namespace pelab
