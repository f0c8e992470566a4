// fire: FIRE (Li et al. 2023, "Functional Interpolation for Relative Positions Improves Long
// Context Transformers"). A learned MLP f^(l): R -> R^H per layer of the progressively
// interpolated log distance:
//   B^(l)_{h,i,j} = f^(l)( psi(i - j) / psi(max(L, i)) )_h,   psi(x) = log(c x + 1),
// f(x) = W2 relu(w1 x + b1) + b2 with model.fire_hidden hidden units, and c > 0 and the threshold
// L >= 1 learned per layer (initial values model.fire_c, model.fire_length; kept in range by
// clamping in the forward pass). The paper is causal (i >= j); for keys after the query
// (bidirectional masks) we use the signed extension sign(i - j) psi(|i - j|) / psi(max(L, i)),
// so the MLP can tell the two directions apart. Query positions are 0-based.
// Kernel: B of every head and layer, Toeplitz on the first L rows (where the normaliser is the
// constant psi(L)); it is additive (Weyl).
#include <fmt/format.h>

#include <cmath>

#include "pe/pe.h"

namespace pelab {
namespace {

constexpr double kMinC = 1e-3;

class Fire : public PositionalEncoding {
 public:
  explicit Fire(const PeOptions& o) {
    const int64_t layers = o.model.n_layers, heads = o.model.n_heads, hidden = o.model.fire_hidden;
    if (hidden < 1)
      throw ConfigError(
          fmt::format("model.fire_hidden: bad value {}; accepted: an integer >= 1", hidden));
    if (!(o.model.fire_c > 0))
      throw ConfigError(
          fmt::format("model.fire_c: bad value {}; accepted: a number > 0", o.model.fire_c));
    if (!(o.model.fire_length >= 1))
      throw ConfigError(fmt::format("model.fire_length: bad value {}; accepted: a number >= 1",
                                    o.model.fire_length));
    // Uniform initialisation as in torch::nn::Linear (bound 1/sqrt(fan_in)); the output bias
    // starts at zero so an untrained FIRE adds a small bias.
    auto uniform = [](std::vector<int64_t> shape, double bound) {
      return (torch::rand(shape) * 2.0 - 1.0) * bound;
    };
    w1_ = register_parameter("w1", uniform({layers, hidden}, 1.0));
    b1_ = register_parameter("b1", uniform({layers, hidden}, 1.0));
    w2_ = register_parameter("w2", uniform({layers, heads, hidden}, 1.0 / std::sqrt(hidden)));
    b2_ = register_parameter("b2", torch::zeros({layers, heads}));
    c_ = register_parameter("c", torch::full({layers}, o.model.fire_c));
    length_ = register_parameter("length", torch::full({layers}, o.model.fire_length));
  }
  std::string name() const override { return "fire"; }
  PeKind kind() const override { return PeKind::kBias; }

  // The MLP's input sign(i - j) psi(|i - j|) / psi(max(L, i)), [length, length].
  torch::Tensor interpolated_distance(int64_t length, int64_t layer) const {
    auto pos = torch::arange(length, torch::kFloat);
    auto offset = pos.unsqueeze(1) - pos.unsqueeze(0);  // i - j
    auto c = c_[layer].clamp_min(kMinC);
    auto psi = [&](const torch::Tensor& x) { return torch::log1p(c * x); };
    auto normaliser = psi(torch::maximum(length_[layer].clamp_min(1.0), pos)).unsqueeze(1);
    return torch::sign(offset) * psi(offset.abs()) / normaliser;
  }

  torch::Tensor bias(int64_t length, int64_t layer) const override {
    auto x = interpolated_distance(length, layer).unsqueeze(-1);    // [L, L, 1]
    auto hidden = torch::relu(x * w1_[layer] + b1_[layer]);         // [L, L, hidden]
    auto out = torch::matmul(hidden, w2_[layer].t()) + b2_[layer];  // [L, L, H]
    return out.permute({2, 0, 1}).contiguous();
  }
  torch::Tensor kernel(int64_t n, int64_t layer) const override {
    torch::NoGradGuard no_grad;
    return bias(n, layer).to(torch::kDouble);
  }

 private:
  torch::Tensor w1_, b1_, w2_, b2_, c_, length_;
};

}  // namespace

PositionalEncodingPtr make_fire(const PeOptions& o) { return std::make_shared<Fire>(o); }

}  // namespace pelab
