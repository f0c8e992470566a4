// kerple: KERPLE (Chi et al. 2022, "KERPLE: Kernelized Relative Positional Embedding for Length
// Extrapolation"), a conditionally positive definite kernel turned into a logit bias with two
// learned positive scalars per head and layer:
//   log variant:   B^(l)_{h,i,j} = -r1 log(1 + r2 |i - j|),
//   power variant: B^(l)_{h,i,j} = -r1 |i - j|^r2,   0 < r2 <= 2,
// (model.kerple_variant). As in the authors' code, r1 and r2 are the parameters themselves, kept
// in range by clamping in the forward pass (r >= 1e-2, and r2 <= 2 for power), and start from
// r1 ~ U(0, 2), r2 ~ U(0, 1). Symmetric in i and j (a causal mask, when set, removes j > i).
// Kernel: B of every head (Toeplitz, symmetric, zero diagonal); it is additive (Weyl).
#include <fmt/format.h>

#include "pe/pe.h"

namespace pelab {
namespace {

constexpr double kMinParameter = 1e-2;

class Kerple : public PositionalEncoding {
 public:
  explicit Kerple(const PeOptions& o) : power_(o.model.kerple_variant == "power") {
    if (o.model.kerple_variant != "log" && o.model.kerple_variant != "power")
      throw ConfigError(fmt::format("model.kerple_variant: bad value '{}'; accepted: log, power",
                                    o.model.kerple_variant));
    const int64_t layers = o.model.n_layers, heads = o.model.n_heads;
    r1_ = register_parameter("r1", torch::rand({layers, heads}) * 2.0);
    r2_ = register_parameter("r2", torch::rand({layers, heads}));
  }
  std::string name() const override { return "kerple"; }
  PeKind kind() const override { return PeKind::kBias; }
  torch::Tensor bias(int64_t length, int64_t layer) const override {
    auto pos = torch::arange(length, torch::kFloat);
    auto distance = (pos.unsqueeze(1) - pos.unsqueeze(0)).abs().unsqueeze(0);  // [1, L, L]
    auto r1 = r1_[layer].clamp_min(kMinParameter).view({-1, 1, 1});
    if (power_) {
      auto r2 = r2_[layer].clamp(kMinParameter, 2.0).view({-1, 1, 1});
      // |i-j|^r2 with 0^r2 = 0; pow(1, r2) at the diagonal keeps d/dr2 finite (log 0 = -inf).
      return -r1 * torch::where(distance > 0, torch::pow(distance.clamp_min(1.0), r2),
                                torch::zeros_like(distance));
    }
    auto r2 = r2_[layer].clamp_min(kMinParameter).view({-1, 1, 1});
    return -r1 * torch::log1p(r2 * distance);
  }
  torch::Tensor kernel(int64_t n, int64_t layer) const override {
    torch::NoGradGuard no_grad;
    return bias(n, layer).to(torch::kDouble);
  }

 private:
  bool power_;
  torch::Tensor r1_, r2_;
};

}  // namespace

PositionalEncodingPtr make_kerple(const PeOptions& o) { return std::make_shared<Kerple>(o); }

}  // namespace pelab
