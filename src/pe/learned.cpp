// learned: a trained absolute table added to the token embeddings, x_i = e(token_i) + P[i],
// P: parameter "table" [max_len, d_model] initialised N(0, 0.02^2) (the authors' "random init").
// Kernel: G_pp = P P^T (float64, [1, n, n]).
#include "pe/pe.h"
#include "pe/sinusoidal.h"

namespace pelab {
namespace {

class Learned : public PositionalEncoding {
 public:
  explicit Learned(const PeOptions& o) {
    table_ = register_parameter("table", torch::randn({o.max_len, o.model.d_model}) * 0.02);
  }
  std::string name() const override { return "learned"; }
  PeKind kind() const override { return PeKind::kAbsolute; }
  torch::Tensor embedding(int64_t length) const override {
    TORCH_CHECK(length <= table_.size(0), "learned PE covers ", table_.size(0), " positions, got ",
                length);
    return table_.narrow(0, 0, length);
  }
  torch::Tensor kernel(int64_t n, int64_t) const override {
    return absolute_gram(table_.detach(), n);
  }

 private:
  torch::Tensor table_;
};

}  // namespace

PositionalEncodingPtr make_learned(const PeOptions& o) { return std::make_shared<Learned>(o); }

}  // namespace pelab
