// xpos: RoPE with xPos's exponential decay (Sun et al. 2022, "A Length-Extrapolatable
// Transformer"). Pair t of the first r = rotary_dims(model) dims rotates as in rope.cpp, and with
//   zeta_t = (2t / r + gamma) / (1 + gamma),  gamma = 0.4,  B = model.xpos_scale_base,
// the query's pair t at position i is scaled by zeta_t^(i / B) and the key's at j by
// zeta_t^(-j / B), so
//   L_ij = Re sum_t q_i^(t) conj(k_j^(t)) e^{i (i - j) theta_t} zeta_t^((i - j) / B) / sqrt(d_h)
// still depends on position only through i - j, and decays with the distance for i > j (the
// causal direction the paper uses; with a bidirectional mask keys after the query are amplified
// by zeta_t^(-(j - i) / B) <= zeta_0^(-L / B)). Options: model.xpos_scale_base and every rope
// option (model.rotary_heads, model.rotary_fraction, model.rope_base, model.rope_scaling).
// Kernel: T_ij = mean_t cos((i - j) theta_t) zeta_t^((i - j) / B) per rotated head: RoPE's
// kernel times the decay, a Hadamard coupling like RoPE's (Toeplitz, unit diagonal, not
// symmetric).
#include <fmt/format.h>

#include "pe/pe.h"
#include "pe/rope.h"

namespace pelab {
namespace {

constexpr double kXposGamma = 0.4;  // the paper's gamma

RotaryHeads xpos_rotary(const PeOptions& o) {
  RotaryHeads r = make_rotary_heads(o.model, o.max_len);
  const double dims = double(r.rotary_dims());
  r.decay = (2.0 * torch::arange(r.theta.size(0), torch::kDouble) / dims + kXposGamma) /
            (1.0 + kXposGamma);
  r.decay_scale_base = o.model.xpos_scale_base;
  return r;
}

class Xpos : public Rope {
 public:
  explicit Xpos(const PeOptions& o) : Rope(xpos_rotary(o)) {}
  std::string name() const override { return "xpos"; }
};

}  // namespace

PositionalEncodingPtr make_xpos(const PeOptions& o) { return std::make_shared<Xpos>(o); }

}  // namespace pelab
