// Logit decomposition (PAPER.md section 1): one head's attention logits split into the terms
// through which content and position enter.
//
// The residual stream entering the layer is x_i = c_i + p_i, where p_i is the absolute PE's
// vector (it reaches every layer unchanged through the residual connections) and c_i = x_i - p_i
// is everything else. The pre-attention LayerNorm is affine once its per-token scale sigma(x_i)
// is fixed, so u_i = LN(x_i) splits exactly into u^p_i = gamma (p_i - mean(p_i)) / sigma(x_i)
// and u^c_i = u_i - u^p_i. Queries and keys follow: q^c = W_Q u^c + b_Q, q^p = W_Q u^p (the bias
// is content), and with s(a, b) the head's score function (rotation included) the logits are
//   L = s(q^c, k^c) + s(q^c, k^p) + s(q^p, k^c) + s(q^p, k^p) + B,
// B the PE's bias. Without an absolute PE only s(q^c, k^c) (and B) remain.
// RoPE heads also get the mean-kernel picture: the unrotated Gram matrix A of the rotary
// channels, the kernel T_ij = mean_t cos((i - j) theta_t), and how far A o T is from the exact
// rotated logits of those channels. MLA splits into its latent content channel and its rotary
// channel.
#pragma once

#include <torch/torch.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "model/transformer.h"

namespace pelab {

struct LogitTerm {
  std::string name;
  torch::Tensor matrix;  // [n, n], the model's dtype
  double frobenius_norm = 0;
  double share = 0;              // ||term||_F / sum over the terms of ||term||_F
  double toeplitz_distance = 0;  // ||M - Toeplitz(M)||_F / ||M||_F
};

struct RotaryView {
  bool present = false;       // the head is rotated
  LogitTerm rotary_channels;  // exact logits of the rotary channels (rotation applied)
  LogitTerm other_channels;   // the head's unrotated channels (partial RoPE; zero otherwise)
  LogitTerm content_gram;     // A: the rotary channels' Gram matrix without rotation
  torch::Tensor kernel;       // T [n, n] float64
  torch::Tensor hadamard;     // A o T
  double hadamard_relative_error = 0;  // ||A o T - rotary_channels||_F / ||rotary_channels||_F
};

struct LogitDecomposition {
  int64_t layer = 0, head = 0, positions = 0;
  torch::Tensor logits;                      // [n, n]: the model's own logits (explicit path)
  std::vector<LogitTerm> terms;              // sum to logits
  double reconstruction_relative_error = 0;  // ||sum(terms) - logits||_F / ||logits||_F
  RotaryView rotary;
};

// tokens: [L] int64 of one sequence, `length` its valid prefix. positions = length when
// valid_only, else L. Throws ConfigError for a layer or head out of range.
LogitDecomposition decompose_logits(Transformer& model, const torch::Tensor& tokens, int64_t length,
                                    int64_t layer, int64_t head, bool valid_only);

// Numbers only (no matrices unless with_matrices).
nlohmann::json decomposition_to_json(const LogitDecomposition& d, bool with_matrices);

}  // namespace pelab
