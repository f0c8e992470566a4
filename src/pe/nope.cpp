// nope: no positional encoding. Logits L_ij = q_i . k_j / sqrt(d_h) see content only; with no
// mask and pooling over all positions the model is permutation invariant (PAPER.md 5.8).
#include "pe/pe.h"

namespace pelab {
namespace {

class NoPositionalEncoding : public PositionalEncoding {
 public:
  std::string name() const override { return "nope"; }
  PeKind kind() const override { return PeKind::kNone; }
};

}  // namespace

PositionalEncodingPtr make_nope(const PeOptions&) {
  return std::make_shared<NoPositionalEncoding>();
}

}  // namespace pelab
