// rope_abs: RoPE plus the sinusoidal absolute encoding, the authors' default "rope" setting:
//   x_i = e(token_i) + P[i],  P[i, 2t] = sin(i / base_s^(2t/d)), P[i, 2t+1] = cos(i /
//   base_s^(2t/d))
// (sinusoidal.cpp, base_s = model.sinusoidal_base), and q, k rotated exactly as in rope.cpp:
//   L_ij = Re sum_t q_i^(t) conj(k_j^(t)) e^{i (i - j) theta_t} / sqrt(d_h).
// Options of both (model.rotary_heads, model.rotary_fraction, model.rope_base). Kernel: RoPE's T
// per rotated head.
#include "pe/pe.h"
#include "pe/rope.h"
#include "pe/sinusoidal.h"

namespace pelab {
namespace {

class RopeAbsolute : public Rope {
 public:
  explicit RopeAbsolute(const PeOptions& o) : Rope(o) {
    table_ = register_buffer("table",
                             sinusoidal_table(o.max_len, o.model.d_model, o.model.sinusoidal_base));
  }
  std::string name() const override { return "rope_abs"; }
  PeKind kind() const override { return PeKind::kRotaryAbsolute; }
  torch::Tensor embedding(int64_t length) const override {
    TORCH_CHECK(length <= table_.size(0), "rope_abs PE covers ", table_.size(0), " positions, got ",
                length);
    return table_.narrow(0, 0, length);
  }

 private:
  torch::Tensor table_;
};

}  // namespace

PositionalEncodingPtr make_rope_abs(const PeOptions& o) {
  return std::make_shared<RopeAbsolute>(o);
}

}  // namespace pelab
