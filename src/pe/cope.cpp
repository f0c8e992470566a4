// cope: CoPE, contextual position encoding (Golovneva et al. 2024, "Contextual Position
// Encoding: Learning to Count What's Important"). Positions are counted by the content: with
// the head's scaled logits s_ij = q_i . k_j / sqrt(d_h) (the mask added, so masked keys count 0),
//   g_ij = sigmoid(s_ij),    p_ij = sum_{t between j and i} g_it   (t = j..i, inclusive),
// and the learned position embeddings e[0 .. P-1] of layer l (d_h wide, shared by the heads) are
// interpolated at p_ij (clamped to [0, P-1], P = model.cope_positions or max_len):
//   B_ij = (p_ij - floor p_ij) q_i . e[ceil p_ij] + (1 - p_ij + floor p_ij) q_i . e[floor p_ij],
//   L_ij = s_ij + B_ij.
// The paper is causal (t = j..i); with a bidirectional mask we count between the two positions
// in either direction. As in the authors' code, the embeddings start at zero and q . e is not
// scaled. B depends on content, so CoPE has no fixed kernel: it is a contextual bias
// (PeKind::kContextual), computed on the explicit attention path (the fused kernel takes only a
// [H, L, L] bias), and the logit decomposition reports it as its positional term.
#include <fmt/format.h>

#include <cmath>

#include "pe/pe.h"

namespace pelab {
namespace {

class Cope : public PositionalEncoding {
 public:
  explicit Cope(const PeOptions& o) {
    const int64_t head_dim = o.model.d_model / o.model.n_heads;
    positions_ = o.model.cope_positions > 0 ? o.model.cope_positions : o.max_len;
    if (positions_ < 2)
      throw ConfigError(fmt::format("model.cope_positions: bad value {}; accepted: 0 or >= 2",
                                    o.model.cope_positions));
    embeddings_ =
        register_parameter("embeddings", torch::zeros({o.model.n_layers, head_dim, positions_}));
  }
  std::string name() const override { return "cope"; }
  PeKind kind() const override { return PeKind::kContextual; }

  torch::Tensor contextual_bias(const torch::Tensor& q, const torch::Tensor& k,
                                const torch::Tensor& additive_mask, int64_t layer) const override {
    auto logits = torch::matmul(q, k.transpose(-2, -1)) / std::sqrt(double(q.size(-1)));
    if (additive_mask.defined()) logits = logits + additive_mask;
    auto gates = torch::sigmoid(logits);  // [B, H, L, L]; 0 where masked
    const int64_t L = q.size(-2);
    // Sums from the key to the query inclusive, through suffix sums (key before the query) or
    // prefix sums (key after it): sum_{t=j..i} = S_ij - S_ii + g_ii with S the suffix sums.
    auto suffix = gates.flip(-1).cumsum(-1).flip(-1);
    auto prefix = gates.cumsum(-1);
    auto own = gates.diagonal(0, -2, -1).unsqueeze(-1);  // g_ii, [B, H, L, 1]
    auto key_before = suffix - suffix.diagonal(0, -2, -1).unsqueeze(-1) + own;
    auto key_after = prefix - prefix.diagonal(0, -2, -1).unsqueeze(-1) + own;
    auto idx = torch::arange(L);
    auto before = idx.unsqueeze(0) <= idx.unsqueeze(1);  // [L, L]: j <= i
    auto position = torch::where(before, key_before, key_after).clamp(0.0, double(positions_ - 1));
    auto at_integers = torch::matmul(q, embeddings_[layer].to(q.dtype()));  // [B, H, L, P]
    auto floor = position.floor(), ceil = position.ceil();
    auto w = position - floor;
    return at_integers.gather(-1, ceil.to(torch::kLong)) * w +
           at_integers.gather(-1, floor.to(torch::kLong)) * (1 - w);
  }

 private:
  int64_t positions_;
  torch::Tensor embeddings_;  // [layers, head_dim, positions]
};

}  // namespace

PositionalEncodingPtr make_cope(const PeOptions& o) { return std::make_shared<Cope>(o); }

}  // namespace pelab
