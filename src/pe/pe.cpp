// The interface's defaults: a PE adds no embedding and no bias, has no kernel and leaves q and k
// unchanged; each PE overrides only what it does.
#include "pe/pe.h"

namespace pelab {

const char* pe_kind_name(PeKind kind) {
  switch (kind) {
    case PeKind::kNone:
      return "none";
    case PeKind::kAbsolute:
      return "absolute";
    case PeKind::kRotary:
      return "rotary";
    case PeKind::kRotaryAbsolute:
      return "rotary+absolute";
    case PeKind::kBias:
      return "logit bias";
    case PeKind::kLatentAttention:
      return "latent attention";
    case PeKind::kContextual:
      return "contextual bias";
  }
  return "?";
}

torch::Tensor PositionalEncoding::embedding(int64_t) const { return {}; }

std::pair<torch::Tensor, torch::Tensor> PositionalEncoding::rotate(const torch::Tensor& q,
                                                                   const torch::Tensor& k,
                                                                   const torch::Tensor&) const {
  return {q, k};
}

RotaryTables PositionalEncoding::rotary_tables(const torch::Tensor&) const { return {}; }

torch::Tensor PositionalEncoding::bias(int64_t, int64_t) const { return {}; }

torch::Tensor PositionalEncoding::contextual_bias(const torch::Tensor&, const torch::Tensor&,
                                                  const torch::Tensor&, int64_t) const {
  return {};
}

torch::Tensor PositionalEncoding::kernel(int64_t, int64_t) const { return {}; }

}  // namespace pelab
