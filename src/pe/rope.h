// RoPE on the first `rotated_heads` heads and the first rotary dims of each (rotary.h has the
// pairing and the angles). Shared by rope, rope_abs and mla so the rotation exists once.
#pragma once

#include <torch/torch.h>

#include <utility>

#include "config/config.h"
#include "pe/pe.h"
#include "pe/rotary.h"

namespace pelab {

struct RotaryHeads {
  // Heads 0 .. rotated_heads-1 rotate; the rest pass through unchanged (NoPE heads). A value at
  // least the head count rotates every head.
  int64_t rotated_heads = 0;
  // [rotary_dims / 2] float64: theta_t = base^(-2t / rotary_dims) after model.rope_scaling
  // (rope_scaling.h); p-RoPE sets its lowest frequencies to 0 (those pairs pass unrotated).
  torch::Tensor theta;
  // Multiplies every rotated pair of q and k (YaRN's sqrt(1/t)); 1 otherwise.
  double attention_factor = 1.0;
  // xPos: [rotary_dims / 2] float64 zeta_t; q's pair t at position i is scaled by
  // zeta_t^(i / decay_scale_base), k's at j by zeta_t^(-j / decay_scale_base). Undefined = none.
  torch::Tensor decay;
  double decay_scale_base = 512.0;

  int64_t rotary_dims() const { return 2 * theta.size(0); }

  // q, k: [B, H, L, D]; positions: [L] int64. Each tensor's own head axis decides what rotates,
  // so a head axis of size 1 (MLA's rotary key shared by all heads) rotates whole when
  // rotated_heads >= 1.
  std::pair<torch::Tensor, torch::Tensor> rotate(const torch::Tensor& q, const torch::Tensor& k,
                                                 const torch::Tensor& positions) const;
  // The same rotation as tables for a kernel that applies it itself (rotary.h); undefined when
  // nothing rotates.
  RotaryTables tables(const torch::Tensor& positions) const;
  // One tensor of the pair (same rule), with magnitude [L, pairs] float64 or undefined.
  torch::Tensor rotate_one(const torch::Tensor& x, const torch::Tensor& positions,
                           const torch::Tensor& magnitude = {}) const;
  // T_ij = a^2 mean_t cos((i - j) theta_t) zeta_t^((i - j) / scale_base), float64 [n, n], a the
  // attention factor: RoPE's PSD Toeplitz kernel with unit diagonal when a = 1 and no decay.
  torch::Tensor real_kernel(int64_t n) const;
  // real_kernel(n) once per rotated head: float64 [rotated_heads, n, n].
  torch::Tensor head_kernels(int64_t n) const;
};

// From model.rotary_heads (-1 = all, else 0..n_heads), model.rotary_fraction (0 < f <= 1, via
// rotary_dims(model)), model.rope_base and model.rope_scaling (max_len: YaRN's default training
// context). Throws ConfigError naming the key on a bad value.
RotaryHeads make_rotary_heads(const ModelConfig& model, int64_t max_len);

// The rope PE; rope_abs extends it with the sinusoidal table.
class Rope : public PositionalEncoding {
 public:
  explicit Rope(const PeOptions& options);
  explicit Rope(RotaryHeads rotary) : rotary_(std::move(rotary)) {}
  const RotaryHeads& rotary() const { return rotary_; }
  std::string name() const override { return "rope"; }
  PeKind kind() const override { return PeKind::kRotary; }
  std::pair<torch::Tensor, torch::Tensor> rotate(const torch::Tensor& q, const torch::Tensor& k,
                                                 const torch::Tensor& positions) const override;
  RotaryTables rotary_tables(const torch::Tensor& positions) const override;
  torch::Tensor kernel(int64_t n, int64_t layer) const override;

 private:
  RotaryHeads rotary_;
};

}  // namespace pelab
