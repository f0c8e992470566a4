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

}  // namespace pelab::test_fixtures
