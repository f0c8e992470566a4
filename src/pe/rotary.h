// Rotary position embedding (RoPE) primitives shared by rope, rope_abs and mla.
// Pairing: dims (2t, 2t+1) of a head form pair t (interleaved, as in RoFormer), rotated by
// angle position * theta_t with theta_t = base^(-2t / rotary_dims), t = 0 .. rotary_dims/2 - 1.
#pragma once

#include <torch/torch.h>

#include <utility>

namespace pelab {

// theta_t for t = 0 .. rotary_dims/2 - 1, float64.
torch::Tensor rope_frequencies(int64_t rotary_dims, double base);

// x: [..., length, head_dim]; positions: [length] int64; theta: [rotary_dims/2].
// Rotates the first rotary_dims dims of the last axis pairwise; the rest pass through.
// magnitude: undefined, or [length, rotary_dims/2] float64 multiplying each rotated pair (xPos's
// decay, YaRN's attention temperature); the pass-through dims are never scaled.
torch::Tensor apply_rotary(const torch::Tensor& x, const torch::Tensor& positions,
                           const torch::Tensor& theta, const torch::Tensor& magnitude = {});

// cos and sin of the angles positions * theta_t, times magnitude when defined: computed in
// float64, then cast to `dtype`, [L, pairs]. apply_rotary rotates by exactly these.
std::pair<torch::Tensor, torch::Tensor> rotary_cos_sin(const torch::Tensor& positions,
                                                       const torch::Tensor& theta,
                                                       const torch::Tensor& magnitude,
                                                       torch::ScalarType dtype);

// cos and sin [L, pairs] laid out per row as the rotation loops read them, float32 [L, 2 pairs]:
// cos_rows[l][2t] = cos_rows[l][2t+1] = cos a, sin_rows[l][2t] = -sin a, sin_rows[l][2t+1] =
// sin a, so that the rotated row is y_j = x_j cos_rows_j + x_(j^1) sin_rows_j (each product
// rounded, then the sum) and the transposed rotation is x_j = y_j cos_rows_j - y_(j^1) sin_rows_j.
std::pair<torch::Tensor, torch::Tensor> interleaved_rotary_rows(const torch::Tensor& cos,
                                                                const torch::Tensor& sin);

// A RoPE-family rotation handed to a kernel that applies it itself (the fused attention rotates
// q and k as it packs them, and its gradients on the way out, instead of a pass of its own).
// Rotating heads [0, heads) of q and k by these tables, dims [0, 2 pairs) of each head, is
// exactly what the PE's rotate() does; the other heads and dims pass through.
struct RotaryTables {
  torch::Tensor q_cos, q_sin;  // float32 [Lq, pairs], rotary_cos_sin's (magnitude included)
  torch::Tensor k_cos, k_sin;  // float32 [Lk, pairs]
  int64_t heads = 0;
  bool defined() const { return q_cos.defined(); }
};

}  // namespace pelab
