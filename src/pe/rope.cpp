// rope: rotary position embedding (Su et al. 2021). Each pair t = (2t, 2t+1) of a head's first
// rotary_dims dims is rotated by angle i * theta_t, theta_t = base^(-2t / rotary_dims), so
//   L_ij = Re sum_t q_i^(t) conj(k_j^(t)) e^{i (i - j) theta_t} / sqrt(d_h)
// depends on position only through i - j. model.rotary_heads = k rotates only heads 0..k-1 (the
// rest are NoPE heads); model.rotary_fraction rotates the first 2*floor(f * d_h / 2) dims of each
// rotated head. Kernel: T_ij = mean_t cos((i - j) theta_t), PSD Toeplitz with unit diagonal.
#include "pe/rope.h"

#include "pe/pe.h"
#include "pe/rotary.h"

namespace pelab {

std::pair<torch::Tensor, torch::Tensor> RotaryHeads::rotate(const torch::Tensor& q,
                                                            const torch::Tensor& k,
                                                            const torch::Tensor& positions) const {
  auto rotate_heads = [&](const torch::Tensor& x) {
    const int64_t heads = x.size(1);
    if (rotated_heads >= heads) return apply_rotary(x, positions, theta);
    if (rotated_heads == 0) return x;
    return torch::cat({apply_rotary(x.narrow(1, 0, rotated_heads), positions, theta),
                       x.narrow(1, rotated_heads, heads - rotated_heads)},
                      1);
  };
  return {rotate_heads(q), rotate_heads(k)};
}

torch::Tensor RotaryHeads::real_kernel(int64_t n) const {
  auto pos = torch::arange(n, torch::kDouble);
  auto offset = (pos.unsqueeze(1) - pos.unsqueeze(0)).unsqueeze(2);  // [n, n, 1]
  return torch::cos(offset * theta.view({1, 1, -1})).mean(2);
}

RotaryHeads make_rotary_heads(const ModelConfig& m) {
  RotaryHeads r;
  r.rotated_heads = m.rotary_heads < 0 ? m.n_heads : m.rotary_heads;
  r.theta = rope_frequencies(rotary_dims(m), m.rope_base);
  return r;
}

namespace {

class Rope : public PositionalEncoding {
 public:
  explicit Rope(const PeOptions& o) : rotary_(make_rotary_heads(o.model)) {}
  std::string name() const override { return "rope"; }
  PeKind kind() const override { return PeKind::kRotary; }
  std::pair<torch::Tensor, torch::Tensor> rotate(const torch::Tensor& q, const torch::Tensor& k,
                                                 const torch::Tensor& positions) const override {
    return rotary_.rotate(q, k, positions);
  }
  torch::Tensor kernel(int64_t n, int64_t) const override {
    return rotary_.real_kernel(n).unsqueeze(0).expand({rotary_.rotated_heads, n, n}).clone();
  }

 private:
  RotaryHeads rotary_;
};

}  // namespace

PositionalEncodingPtr make_rope(const PeOptions& o) { return std::make_shared<Rope>(o); }

}  // namespace pelab
