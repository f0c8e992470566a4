// RoPE on the first `rotated_heads` heads and the first `rotary_dims` dims of each (rotary.h has
// the pairing). Shared by rope, rope_abs and mla.
#pragma once

#include <torch/torch.h>

namespace pelab {

struct RotaryHeads {
  int64_t rotated_heads = 0;  // heads 0 .. rotated_heads-1 rotate; the rest pass through (NoPE)
  torch::Tensor theta;        // [rotary_dims / 2] float64

  // q, k: [B, H, L, D]; a head axis of size 1 (a rotary key shared by all heads) rotates whole.
  std::pair<torch::Tensor, torch::Tensor> rotate(const torch::Tensor& q, const torch::Tensor& k,
                                                 const torch::Tensor& positions) const;
  // T_ij = mean_t cos((i - j) theta_t), float64 [n, n].
  torch::Tensor real_kernel(int64_t n) const;
};

}  // namespace pelab

namespace pelab {
struct ModelConfig;
// From model.rotary_heads, model.rotary_fraction and model.rope_base.
RotaryHeads make_rotary_heads(const ModelConfig& model);
}  // namespace pelab
