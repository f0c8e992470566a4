// One positional encoding built on its own, for the PE tests: a 2-layer model of 4 heads of 8
// dimensions (MLA's rotary part 8), for positions up to kPeMaxLen.
#pragma once

#include <functional>
#include <string>

#include "pe/pe.h"

namespace pelab::test_fixtures {

inline constexpr int64_t kPeMaxLen = 40;

// `edit` adjusts the model configuration before the PE is made.
inline PositionalEncodingPtr small_pe(const std::string& name,
                                      const std::function<void(ModelConfig&)>& edit = {}) {
  ModelConfig m;
  m.pe = name;
  m.d_model = 32;
  m.n_heads = 4;
  m.n_layers = 2;
  m.mla_rope_dim = 8;
  if (edit) edit(m);
  return make_pe(PeOptions{m, kPeMaxLen});
}

// The logit of head h between query position i and key position j of [1, H, L, D] q and k.
inline double head_logit(const torch::Tensor& q, const torch::Tensor& k, int64_t h, int64_t i,
                         int64_t j) {
  return (q[0][h][i] * k[0][h][j]).sum().item<double>();
}

}  // namespace pelab::test_fixtures
