// prope: p-RoPE (Barbero et al. 2024, "Round and Round We Go! What makes Rotary Positional
// Encodings useful?"). RoPE whose lowest frequencies are removed: of the P = rotary_dims / 2
// pairs, the last m = round(f P) (the lowest theta_t, f = model.rope_truncate) get theta_t = 0,
// so they pass through unrotated and carry content only:
//   theta'_t = theta_t for t < P - m,   theta'_t = 0 for t >= P - m,
//   L_ij = Re sum_t q_i^(t) conj(k_j^(t)) e^{i (i - j) theta'_t} / sqrt(d_h).
// f = 0 is RoPE; f = 1 is NoPE. Every rope option applies (model.rotary_heads,
// model.rotary_fraction, model.rope_base, model.rope_scaling).
// Kernel: T_ij = mean_t cos((i - j) theta'_t) = (m + sum_{t < P-m} cos((i - j) theta_t)) / P, a
// PSD Toeplitz Hadamard kernel with unit diagonal and a constant floor m / P.
#include <cmath>

#include "pe/pe.h"
#include "pe/rope.h"

namespace pelab {
namespace {

RotaryHeads truncated_rotary(const PeOptions& o) {
  RotaryHeads r = make_rotary_heads(o.model, o.max_len);
  const int64_t pairs = r.theta.size(0);
  const auto dropped = static_cast<int64_t>(std::llround(o.model.rope_truncate * double(pairs)));
  if (dropped > 0) r.theta.narrow(0, pairs - dropped, dropped).zero_();
  return r;
}

class PartialRope : public Rope {
 public:
  explicit PartialRope(const PeOptions& o) : Rope(truncated_rotary(o)) {}
  std::string name() const override { return "prope"; }
};

}  // namespace

PositionalEncodingPtr make_prope(const PeOptions& o) { return std::make_shared<PartialRope>(o); }

}  // namespace pelab
