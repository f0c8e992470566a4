// sinusoidal: fixed absolute encoding added to the token embeddings (Vaswani et al. 2017),
//   x_i = e(token_i) + P[i],
//   P[pos, 2i] = sin(pos / base^(2i/d)), P[pos, 2i+1] = cos(pos / base^(2i/d))   (interleaved),
// d = d_model, base = model.sinusoidal_base (10000). Buffer "table" [max_len, d_model].
// Kernel: G_pp = P P^T (float64, [1, n, n]).
#include "pe/sinusoidal.h"

#include "pe/pe.h"

namespace pelab {

torch::Tensor sinusoidal_table(int64_t length, int64_t d_model, double base, torch::Dtype dtype) {
  auto pos = torch::arange(length, torch::kDouble).unsqueeze(1);
  auto i = torch::arange((d_model + 1) / 2, torch::kDouble).unsqueeze(0);
  auto angle = pos * torch::pow(base, -2.0 * i / double(d_model));
  auto table = torch::stack({angle.sin(), angle.cos()}, -1).flatten(1);
  return table.narrow(1, 0, d_model).to(dtype).contiguous();
}

torch::Tensor absolute_gram(const torch::Tensor& table, int64_t n) {
  TORCH_CHECK(n <= table.size(0), "absolute PE covers ", table.size(0), " positions, got ", n);
  auto p = table.narrow(0, 0, n).to(torch::kDouble);
  return torch::matmul(p, p.t()).unsqueeze(0);
}

namespace {

class Sinusoidal : public PositionalEncoding {
 public:
  explicit Sinusoidal(const PeOptions& o)
      : d_model_(o.model.d_model), base_(o.model.sinusoidal_base) {
    table_ = register_buffer("table",
                             sinusoidal_table(o.max_len, o.model.d_model, o.model.sinusoidal_base));
  }
  std::string name() const override { return "sinusoidal"; }
  PeKind kind() const override { return PeKind::kAbsolute; }
  torch::Tensor embedding(int64_t length) const override {
    TORCH_CHECK(length <= table_.size(0), "sinusoidal PE covers ", table_.size(0),
                " positions, got ", length);
    return table_.narrow(0, 0, length);
  }
  // Any n: the table is a closed form, evaluated here in float64.
  torch::Tensor kernel(int64_t n, int64_t) const override {
    return absolute_gram(sinusoidal_table(n, d_model_, base_, torch::kDouble), n);
  }

 private:
  int64_t d_model_;
  double base_;
  torch::Tensor table_;
};

}  // namespace

PositionalEncodingPtr make_sinusoidal(const PeOptions& o) {
  return std::make_shared<Sinusoidal>(o);
}

}  // namespace pelab
