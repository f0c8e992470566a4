// mla: multi-head latent attention with decoupled RoPE (DeepSeek-V2). The attention block is
// src/model/mla.*; this PE rotates the narrow rotary channel: every one of the
// d_R = model.mla_rope_dim dims of q_R and k_R, pairs (2t, 2t+1), theta_t = base^(-2t/d_R).
// Unlike the authors' helper (PAPER.md 5.6) these are true rotations, so the rotary logit
// q_R,i . k_R,j depends on position only through i - j. Kernel: T for d_R dims.
#include "pe/pe.h"
#include "pe/rope.h"
#include "pe/rotary.h"

namespace pelab {
namespace {

class LatentRope : public PositionalEncoding {
 public:
  explicit LatentRope(const PeOptions& o) {
    rotary_.rotated_heads = std::numeric_limits<int64_t>::max();  // q_R and k_R rotate whole
    rotary_.theta = rope_frequencies(o.model.mla_rope_dim, o.model.rope_base);
  }
  std::string name() const override { return "mla"; }
  PeKind kind() const override { return PeKind::kLatentAttention; }
  std::pair<torch::Tensor, torch::Tensor> rotate(const torch::Tensor& q, const torch::Tensor& k,
                                                 const torch::Tensor& positions) const override {
    return rotary_.rotate(q, k, positions);
  }
  torch::Tensor kernel(int64_t n, int64_t) const override {
    return rotary_.real_kernel(n).unsqueeze(0);
  }

 private:
  RotaryHeads rotary_;
};

}  // namespace

PositionalEncodingPtr make_mla(const PeOptions& o) { return std::make_shared<LatentRope>(o); }

}  // namespace pelab
