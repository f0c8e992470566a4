// rope: rotary position embedding (Su et al. 2021). Pair t = dims (2t, 2t+1) of a head's first
// r = rotary_dims(model) dims is rotated by angle i * theta_t, theta_t = base^(-2t / r):
//   q'_{2t}   = q_{2t} cos(i theta_t) - q_{2t+1} sin(i theta_t),
//   q'_{2t+1} = q_{2t} sin(i theta_t) + q_{2t+1} cos(i theta_t)   (k the same at position j),
// so   L_ij = Re sum_t q_i^(t) conj(k_j^(t)) e^{i (i - j) theta_t} / sqrt(d_h)
// depends on position only through i - j. model.rotary_heads = k rotates only heads 0..k-1 (the
// rest are NoPE heads); model.rotary_fraction sets r, dims r..d_h-1 pass through.
// Kernel: T_ij = mean_t cos((i - j) theta_t) per rotated head, PSD Toeplitz with unit diagonal.
// model.rope_scaling changes theta_t (and, for YaRN, scales q and k): rope_scaling.h.
#include "pe/rope.h"

#include <fmt/format.h>

#include "pe/pe.h"
#include "pe/rope_scaling.h"
#include "pe/rotary.h"

namespace pelab {

torch::Tensor RotaryHeads::rotate_one(const torch::Tensor& x, const torch::Tensor& positions,
                                      const torch::Tensor& magnitude) const {
  const int64_t heads = x.size(1);
  if (rotated_heads >= heads) return apply_rotary(x, positions, theta, magnitude);
  if (rotated_heads <= 0) return x;
  return torch::cat({apply_rotary(x.narrow(1, 0, rotated_heads), positions, theta, magnitude),
                     x.narrow(1, rotated_heads, heads - rotated_heads)},
                    1);
}

namespace {

// [L, pairs] float64 magnitudes of q (sign +1) or k (sign -1): a zeta_t^(+-i / scale_base);
// undefined when there is none (no decay, attention factor 1).
torch::Tensor rotary_magnitude(const RotaryHeads& r, const torch::Tensor& positions, double sign) {
  if (!r.decay.defined() && r.attention_factor == 1.0) return {};
  auto m = torch::full({positions.size(0), r.theta.size(0)}, r.attention_factor, torch::kDouble);
  if (!r.decay.defined()) return m;
  auto exponent = positions.to(torch::kDouble).unsqueeze(1) * (sign / r.decay_scale_base);
  return m * torch::pow(r.decay.unsqueeze(0), exponent);
}

}  // namespace

std::pair<torch::Tensor, torch::Tensor> RotaryHeads::rotate(const torch::Tensor& q,
                                                            const torch::Tensor& k,
                                                            const torch::Tensor& positions) const {
  return {rotate_one(q, positions, rotary_magnitude(*this, positions, 1.0)),
          rotate_one(k, positions, rotary_magnitude(*this, positions, -1.0))};
}

RotaryTables RotaryHeads::tables(const torch::Tensor& positions) const {
  RotaryTables t;
  if (rotated_heads <= 0 || theta.size(0) == 0) return t;
  const auto q_magnitude = rotary_magnitude(*this, positions, 1.0);
  std::tie(t.q_cos, t.q_sin) = rotary_cos_sin(positions, theta, q_magnitude, torch::kFloat);
  if (q_magnitude.defined()) {
    std::tie(t.k_cos, t.k_sin) =
        rotary_cos_sin(positions, theta, rotary_magnitude(*this, positions, -1.0), torch::kFloat);
  } else {
    t.k_cos = t.q_cos;
    t.k_sin = t.q_sin;
  }
  t.heads = rotated_heads;
  return t;
}

torch::Tensor RotaryHeads::real_kernel(int64_t n) const {
  TORCH_CHECK(theta.numel() > 0, "RoPE kernel: no rotary pair");
  auto pos = torch::arange(n, torch::kDouble);
  auto offset = (pos.unsqueeze(1) - pos.unsqueeze(0)).unsqueeze(2);  // [n, n, 1]
  auto terms = torch::cos(offset * theta.view({1, 1, -1}));
  if (decay.defined())
    terms = terms * torch::pow(decay.view({1, 1, -1}), offset / decay_scale_base);
  return terms.mean(2) * (attention_factor * attention_factor);
}

torch::Tensor RotaryHeads::head_kernels(int64_t n) const {
  if (rotated_heads <= 0) return torch::zeros({0, n, n}, torch::kDouble);
  return real_kernel(n).unsqueeze(0).expand({rotated_heads, n, n}).clone();
}

RotaryHeads make_rotary_heads(const ModelConfig& m, int64_t max_len) {
  if (m.rotary_heads < -1 || m.rotary_heads > m.n_heads)
    throw ConfigError(
        fmt::format("model.rotary_heads: bad value {}; accepted: -1 (all) or 0..{} (n_heads)",
                    m.rotary_heads, m.n_heads));
  if (!(m.rotary_fraction > 0.0 && m.rotary_fraction <= 1.0))
    throw ConfigError(fmt::format(
        "model.rotary_fraction: bad value {}; accepted: a number in (0, 1]", m.rotary_fraction));
  RotaryHeads r;
  r.rotated_heads = m.rotary_heads < 0 ? m.n_heads : m.rotary_heads;
  const int64_t dims = rotary_dims(m);
  if (dims < 2 && r.rotated_heads > 0)
    throw ConfigError(fmt::format(
        "model.rotary_fraction: {} of head_dim {} rotates no pair; accepted: a fraction giving "
        "at least 2 dims",
        m.rotary_fraction, m.d_model / m.n_heads));
  auto scaled = scaled_rope_frequencies(dims, m, max_len);
  r.theta = scaled.theta;
  r.attention_factor = scaled.attention_factor;
  return r;
}

Rope::Rope(const PeOptions& o) : rotary_(make_rotary_heads(o.model, o.max_len)) {}

std::pair<torch::Tensor, torch::Tensor> Rope::rotate(const torch::Tensor& q, const torch::Tensor& k,
                                                     const torch::Tensor& positions) const {
  return rotary_.rotate(q, k, positions);
}

RotaryTables Rope::rotary_tables(const torch::Tensor& positions) const {
  return rotary_.tables(positions);
}

torch::Tensor Rope::kernel(int64_t n, int64_t) const { return rotary_.head_kernels(n); }

PositionalEncodingPtr make_rope(const PeOptions& o) { return std::make_shared<Rope>(o); }

}  // namespace pelab
