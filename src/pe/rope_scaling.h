// RoPE context scaling, shared by every rotary PE (rope, rope_abs, mla, xpos, prope). With
// theta_t = base^(-2t/d), t = 0 .. d/2 - 1, and scaling factor s (model.rope_scaling_factor):
//   none:   theta'_t = theta_t;
//   linear: theta'_t = theta_t / s  (position interpolation, Chen et al. 2023: positions i / s);
//   ntk:    theta'_t = (base s^(d/(d-2)))^(-2t/d)  (NTK-aware base change, bloc97 2023; the
//           highest frequency is kept and the lowest divided by s);
//   yarn:   r_t = L_orig theta_t / (2 pi) (rotations of pair t over the training context L_orig),
//           gamma_t = clamp((r_t - alpha) / (beta - alpha), 0, 1), alpha = 1, beta = 32,
//           theta'_t = (1 - gamma_t) theta_t / s + gamma_t theta_t, and q and k are both
//           multiplied by sqrt(1/t) = 0.1 ln s + 1 (Peng et al. 2023, "YaRN", eqs. 19-22), so the
//           logits carry the temperature (0.1 ln s + 1)^2.
#pragma once

#include <torch/torch.h>

#include "config/config.h"

namespace pelab {

struct ScaledRopeFrequencies {
  torch::Tensor theta;          // [rotary_dims / 2] float64
  double attention_factor = 1;  // multiplies each rotated q and k pair (YaRN); 1 otherwise
};

// theta' and the attention factor for `rotary_dims` dims of base model.rope_base under
// model.rope_scaling / model.rope_scaling_factor; YaRN's L_orig is model.rope_original_length,
// or max_len when that is 0. Throws ConfigError naming the key on a bad combination.
ScaledRopeFrequencies scaled_rope_frequencies(int64_t rotary_dims, const ModelConfig& model,
                                              int64_t max_len);

}  // namespace pelab
