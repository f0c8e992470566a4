// rope_abs: RoPE plus the sinusoidal absolute encoding, the authors' default "rope" setting:
// x_i = e(token_i) + P[i] (sinusoidal.cpp) and q, k rotated as in rope.cpp. Kernel: RoPE's T.
#include "pe/pe.h"
#include "pe/rope.h"
#include "pe/sinusoidal.h"

namespace pelab {
namespace {

class RopeAbsolute : public PositionalEncoding {
 public:
  explicit RopeAbsolute(const PeOptions& o) : rotary_(make_rotary_heads(o.model)) {
    table_ = register_buffer("table",
                             sinusoidal_table(o.max_len, o.model.d_model, o.model.sinusoidal_base));
  }
  std::string name() const override { return "rope_abs"; }
  PeKind kind() const override { return PeKind::kRotaryAbsolute; }
  torch::Tensor embedding(int64_t length) const override { return table_.narrow(0, 0, length); }
  std::pair<torch::Tensor, torch::Tensor> rotate(const torch::Tensor& q, const torch::Tensor& k,
                                                 const torch::Tensor& positions) const override {
    return rotary_.rotate(q, k, positions);
  }
  torch::Tensor kernel(int64_t n, int64_t) const override {
    return rotary_.real_kernel(n).unsqueeze(0).expand({rotary_.rotated_heads, n, n}).clone();
  }

 private:
  RotaryHeads rotary_;
  torch::Tensor table_;
};

}  // namespace

PositionalEncodingPtr make_rope_abs(const PeOptions& o) {
  return std::make_shared<RopeAbsolute>(o);
}

}  // namespace pelab
