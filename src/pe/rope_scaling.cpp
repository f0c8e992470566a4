// RoPE context scaling (equations in rope_scaling.h).
#include "pe/rope_scaling.h"

#include <fmt/format.h>

#include <cmath>
#include <numbers>

#include "pe/rotary.h"

namespace pelab {

namespace {

constexpr double kYarnAlpha = 1.0;  // pairs turning less than once over L_orig: interpolated
constexpr double kYarnBeta = 32.0;  // pairs turning more than 32 times: kept

}  // namespace

ScaledRopeFrequencies scaled_rope_frequencies(int64_t rotary_dims, const ModelConfig& m,
                                              int64_t max_len) {
  const double s = m.rope_scaling_factor;
  if (!(s >= 1.0))
    throw ConfigError(
        fmt::format("model.rope_scaling_factor: bad value {}; accepted: a number >= 1", s));
  ScaledRopeFrequencies out;
  out.theta = rope_frequencies(rotary_dims, m.rope_base);
  if (m.rope_scaling == "none") return out;
  if (m.rope_scaling == "linear") {
    out.theta = out.theta / s;
  } else if (m.rope_scaling == "ntk") {
    // One pair has theta_0 = 1 whatever the base: nothing to change.
    if (rotary_dims > 2)
      out.theta = rope_frequencies(
          rotary_dims, m.rope_base * std::pow(s, double(rotary_dims) / double(rotary_dims - 2)));
  } else if (m.rope_scaling == "yarn") {
    const int64_t original = m.rope_original_length > 0 ? m.rope_original_length : max_len;
    auto rotations = out.theta * (double(original) / (2.0 * std::numbers::pi));
    auto gamma = ((rotations - kYarnAlpha) / (kYarnBeta - kYarnAlpha)).clamp(0.0, 1.0);
    out.theta = (1.0 - gamma) * out.theta / s + gamma * out.theta;
    out.attention_factor = 0.1 * std::log(s) + 1.0;
  } else {
    throw ConfigError(fmt::format(
        "model.rope_scaling: bad value '{}'; accepted: none, linear, ntk, yarn", m.rope_scaling));
  }
  return out;
}

}  // namespace pelab
