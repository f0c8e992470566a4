// What the oneDNN and bf16 tests compare with: the relative error in norm, and bf16's tolerance
// for one product.
#pragma once

#include <torch/torch.h>

#include "kernels/onednn_linear.h"

namespace pelab::test_compare {

// ||actual - expected|| / ||expected|| in double (||actual - expected|| where expected is 0).
inline double relative_error(const torch::Tensor& actual, const torch::Tensor& expected) {
  const double scale = expected.to(torch::kDouble).norm().item<double>();
  const double diff =
      (actual.to(torch::kDouble) - expected.to(torch::kDouble)).norm().item<double>();
  return scale > 0 ? diff / scale : diff;
}

// bf16 operands: 8-bit mantissas (2^-8 = 0.4 % each).
constexpr double kBf16Tolerance = 2e-2;

// Whether train.precision = "bf16" runs here: oneDNN in the build, AVX512_BF16 in the CPU.
inline bool bf16_products_here() { return onednn_available() && cpu_has_avx512_bf16(); }

}  // namespace pelab::test_compare
