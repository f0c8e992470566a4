// mla: multi-head latent attention with decoupled RoPE (DeepSeek-V2). The attention block is
// src/model/mla.*; this PE rotates its narrow rotary channel: all d_R = model.mla_rope_dim dims of
// q_R and k_R, pairs (2t, 2t+1), angle i * theta_t, theta_t = rope_base^(-2t / d_R):
//   q'_{2t} = q_{2t} cos(i theta_t) - q_{2t+1} sin(i theta_t),
//   q'_{2t+1} = q_{2t} sin(i theta_t) + q_{2t+1} cos(i theta_t),
// so the rotary logit q'_{R,i} . k'_{R,j} = Re sum_t q_R,i^(t) conj(k_R,j^(t)) e^{i (i-j) theta_t}.
// Unlike the authors' helper (PAPER.md 5.6) these are true rotations, so that logit depends on
// position only through i - j. Kernel: T_ij = mean_t cos((i - j) theta_t) over the d_R/2 pairs,
// [1, n, n]. model.rope_scaling applies as in rope (rope_scaling.h).
#include <fmt/format.h>

#include <limits>

#include "pe/pe.h"
#include "pe/rope.h"
#include "pe/rope_scaling.h"
#include "pe/rotary.h"

namespace pelab {
namespace {

class LatentRope : public PositionalEncoding {
 public:
  explicit LatentRope(const PeOptions& o) {
    const int64_t d_r = o.model.mla_rope_dim;
    if (d_r < 2 || d_r % 2 != 0)
      throw ConfigError(
          fmt::format("model.mla_rope_dim: bad value {}; accepted: an even number >= 2", d_r));
    rotary_.rotated_heads = std::numeric_limits<int64_t>::max();  // q_R and k_R rotate whole
    auto scaled = scaled_rope_frequencies(d_r, o.model, o.max_len);
    rotary_.theta = scaled.theta;
    rotary_.attention_factor = scaled.attention_factor;
  }
  std::string name() const override { return "mla"; }
  PeKind kind() const override { return PeKind::kLatentAttention; }
  std::pair<torch::Tensor, torch::Tensor> rotate(const torch::Tensor& q, const torch::Tensor& k,
                                                 const torch::Tensor& positions) const override {
    TORCH_CHECK(q.size(-1) == rotary_.rotary_dims() && k.size(-1) == rotary_.rotary_dims(),
                "mla PE rotates the d_R = ", rotary_.rotary_dims(),
                " rotary dims; got q and k of width ", q.size(-1), " and ", k.size(-1));
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
