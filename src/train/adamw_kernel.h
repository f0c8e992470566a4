// One pass of AdamW over a range of a parameter tensor's elements (torch-free, so it is compiled
// without the precompiled header and with -fno-math-errno, which lets sqrt vectorise).
#pragma once

#include <cstdint>

namespace pelab {

struct AdamWCoefficients {
  float decay;         // 1 - lr * weight_decay
  float beta1, beta2;  // moment decay rates
  float one_minus_beta1, one_minus_beta2;
  float sqrt_bias_correction2;  // sqrt(1 - beta2^step)
  float eps;
  float step_size;  // lr / (1 - beta1^step)
};

// For i in [0, n): w = w decay; m = beta1 m + (1 - beta1) g; v = beta2 v + (1 - beta2) g g;
// w -= step_size m / (sqrt(v) / sqrt_bias_correction2 + eps): torch::optim::AdamW's sequence of
// operations, in the same order and float32 roundings, in one read and write of each array.
void adamw_update(float* weight, const float* grad, float* exp_avg, float* exp_avg_sq, int64_t n,
                  const AdamWCoefficients& c);

}  // namespace pelab
