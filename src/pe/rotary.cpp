#include "pe/rotary.h"

namespace pelab {

torch::Tensor rope_frequencies(int64_t rotary_dims, double base) {
  auto t = torch::arange(rotary_dims / 2, torch::kDouble);
  return torch::pow(base, -2.0 * t / double(rotary_dims));
}

torch::Tensor apply_rotary(const torch::Tensor& x, const torch::Tensor& positions,
                           const torch::Tensor& theta) {
  const int64_t pairs = theta.size(0);
  if (pairs == 0) return x;
  const int64_t rotary = 2 * pairs;
  // Angles in double so long positions keep their precision, then the input's dtype.
  auto angles = positions.to(torch::kDouble).unsqueeze(1) * theta.unsqueeze(0);  // [L, pairs]
  auto cos = angles.cos().to(x.scalar_type());
  auto sin = angles.sin().to(x.scalar_type());
  auto rotated_part = x.narrow(-1, 0, rotary);
  auto shape = rotated_part.sizes().vec();
  shape.back() = pairs;
  shape.push_back(2);
  auto pairs_view = rotated_part.reshape(shape);
  auto x0 = pairs_view.select(-1, 0), x1 = pairs_view.select(-1, 1);
  auto y = torch::stack({x0 * cos - x1 * sin, x0 * sin + x1 * cos}, -1).flatten(-2);
  if (rotary == x.size(-1)) return y;
  return torch::cat({y, x.narrow(-1, rotary, x.size(-1) - rotary)}, -1);
}

}  // namespace pelab
