// relative: the authors' "relative" (their "T5"): one learned scalar per offset, head and layer,
//   B^(l)_{h,i,j} = b^(l)_h[i - j],   i - j in [-(max_len-1), max_len-1],
// stored as table[l, h, (i - j) + max_len - 1], initialised to zero. No buckets.
#include "pe/bias_table.h"
#include "pe/pe.h"

namespace pelab {
namespace {

class Relative : public PositionalEncoding {
 public:
  explicit Relative(const PeOptions& o) : max_len_(o.max_len) {
    table_ = register_parameter(
        "table", torch::zeros({o.model.n_layers, o.model.n_heads, 2 * o.max_len - 1}));
  }
  std::string name() const override { return "relative"; }
  PeKind kind() const override { return PeKind::kBias; }
  torch::Tensor bias(int64_t length, int64_t layer) const override {
    TORCH_CHECK(length <= max_len_, "relative PE covers ", max_len_, " positions, got ", length);
    auto pos = torch::arange(length, torch::kLong);
    auto index = pos.unsqueeze(1) - pos.unsqueeze(0) + (max_len_ - 1);
    return lookup_bias(table_[layer], index);
  }
  torch::Tensor kernel(int64_t n, int64_t layer) const override {
    torch::NoGradGuard no_grad;
    return bias(n, layer).to(torch::kDouble);
  }

 private:
  int64_t max_len_;
  torch::Tensor table_;
};

}  // namespace

PositionalEncodingPtr make_relative(const PeOptions& o) { return std::make_shared<Relative>(o); }

}  // namespace pelab
