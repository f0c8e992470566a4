// Rotary position embedding (RoPE) primitives shared by rope, rope_abs and mla.
// Pairing: dims (2t, 2t+1) of a head form pair t (interleaved, as in RoFormer), rotated by
// angle position * theta_t with theta_t = base^(-2t / rotary_dims), t = 0 .. rotary_dims/2 - 1.
#pragma once

#include <torch/torch.h>

namespace pelab {

// theta_t for t = 0 .. rotary_dims/2 - 1, float64.
torch::Tensor rope_frequencies(int64_t rotary_dims, double base);

// x: [..., length, head_dim]; positions: [length] int64; theta: [rotary_dims/2].
// Rotates the first rotary_dims dims of the last axis pairwise; the rest pass through.
// magnitude: undefined, or [length, rotary_dims/2] float64 multiplying each rotated pair (xPos's
// decay, YaRN's attention temperature); the pass-through dims are never scaled.
torch::Tensor apply_rotary(const torch::Tensor& x, const torch::Tensor& positions,
                           const torch::Tensor& theta, const torch::Tensor& magnitude = {});

}  // namespace pelab
