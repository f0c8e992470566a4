// alibi: a fixed linear distance penalty per head (Press et al. 2022),
//   B_{h,i,j} = -m_h |i - j|,
// symmetric (a causal mask, when set, removes j > i elsewhere). Slopes (alibi.h),
// model.alibi_slopes:
//   standard: m_h = 2^(-8(h+1)/H) for H a power of two; otherwise n = 2^floor(log2 H) and the
//             slopes are those of n heads followed by slopes 0, 2, 4, ... of 2n heads, H - n of
//             them;
//   paper:    m_h = exp(-h/H), h = 0..H-1 (the authors').
// No parameters (the slopes are a float64 buffer); the same bias in every layer.
#include "pe/alibi.h"

#include <fmt/format.h>

#include <cmath>

#include "pe/pe.h"

namespace pelab {

namespace {

std::vector<double> power_of_two_slopes(int64_t n) {
  std::vector<double> s(n);
  for (int64_t h = 0; h < n; ++h) s[h] = std::pow(2.0, -8.0 * double(h + 1) / double(n));
  return s;
}

}  // namespace

std::vector<double> alibi_slopes(int64_t heads, const std::string& rule) {
  if (rule != "standard" && rule != "paper")
    throw ConfigError(
        fmt::format("model.alibi_slopes: bad value '{}'; accepted: standard, paper", rule));
  if (heads < 1)
    throw ConfigError(fmt::format("model.n_heads: bad value {}; accepted: >= 1", heads));
  if (rule == "paper") {
    std::vector<double> s(heads);
    for (int64_t h = 0; h < heads; ++h) s[h] = std::exp(-double(h) / double(heads));
    return s;
  }
  int64_t n = 1;
  while (n * 2 <= heads) n *= 2;
  std::vector<double> s = power_of_two_slopes(n);
  const std::vector<double> extra = power_of_two_slopes(2 * n);
  for (int64_t i = 0; int64_t(s.size()) < heads; i += 2) s.push_back(extra[i]);
  return s;
}

namespace {

class Alibi : public PositionalEncoding {
 public:
  explicit Alibi(const PeOptions& o) {
    slopes_ = register_buffer(
        "slopes",
        torch::tensor(alibi_slopes(o.model.n_heads, o.model.alibi_slopes), torch::kDouble));
  }
  std::string name() const override { return "alibi"; }
  PeKind kind() const override { return PeKind::kBias; }
  torch::Tensor bias(int64_t length, int64_t layer) const override {
    if (!cached_.defined() || cached_.size(1) != length)
      cached_ = kernel(length, layer).to(torch::kFloat);
    return cached_;
  }
  torch::Tensor kernel(int64_t n, int64_t) const override {
    auto pos = torch::arange(n, torch::kDouble);
    auto distance = (pos.unsqueeze(1) - pos.unsqueeze(0)).abs();
    return -slopes_.view({-1, 1, 1}) * distance.unsqueeze(0);
  }

 private:
  torch::Tensor slopes_;
  mutable torch::Tensor cached_;  // the bias for the last length asked
};

}  // namespace

PositionalEncodingPtr make_alibi(const PeOptions& o) { return std::make_shared<Alibi>(o); }

}  // namespace pelab
