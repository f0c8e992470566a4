// The PE registry: adding a positional encoding is one new file plus one line here.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include "pe/pe.h"

namespace pelab {

PositionalEncodingPtr make_nope(const PeOptions&);
PositionalEncodingPtr make_sinusoidal(const PeOptions&);
PositionalEncodingPtr make_learned(const PeOptions&);
PositionalEncodingPtr make_relative(const PeOptions&);
PositionalEncodingPtr make_t5(const PeOptions&);
PositionalEncodingPtr make_alibi(const PeOptions&);
PositionalEncodingPtr make_rope(const PeOptions&);
PositionalEncodingPtr make_rope_abs(const PeOptions&);
PositionalEncodingPtr make_mla(const PeOptions&);
PositionalEncodingPtr make_xpos(const PeOptions&);
PositionalEncodingPtr make_prope(const PeOptions&);
PositionalEncodingPtr make_kerple(const PeOptions&);
PositionalEncodingPtr make_fire(const PeOptions&);
PositionalEncodingPtr make_cope(const PeOptions&);

namespace {

struct Entry {
  PeInfo info;
  PositionalEncodingPtr (*make)(const PeOptions&);
};

const std::vector<Entry>& registry() {
  static const std::vector<Entry> entries = {
      {{"nope", PeKind::kNone, "no positional information"}, make_nope},
      {{"sinusoidal", PeKind::kAbsolute, "fixed sin/cos table added to the embeddings"},
       make_sinusoidal},
      {{"learned", PeKind::kAbsolute, "trained absolute table added to the embeddings"},
       make_learned},
      {{"relative", PeKind::kBias, "learned scalar per offset, head and layer (authors')"},
       make_relative},
      {{"t5", PeKind::kBias, "T5 bucketed relative bias per head and layer"}, make_t5},
      {{"alibi", PeKind::kBias, "fixed -m_h |i-j| bias (model.alibi_slopes)"}, make_alibi},
      {{"rope", PeKind::kRotary, "rotary q/k (model.rotary_heads, model.rotary_fraction)"},
       make_rope},
      {{"rope_abs", PeKind::kRotaryAbsolute, "rope plus sinusoidal (the authors' \"rope\")"},
       make_rope_abs},
      {{"mla", PeKind::kLatentAttention, "DeepSeek latent attention with decoupled RoPE"},
       make_mla},
      {{"xpos", PeKind::kRotary, "rope with xPos decay zeta_t^((i-j)/model.xpos_scale_base)"},
       make_xpos},
      {{"prope", PeKind::kRotary, "p-RoPE: lowest model.rope_truncate of frequencies unrotated"},
       make_prope},
      {{"kerple", PeKind::kBias, "KERPLE -r1 log(1+r2|i-j|) or -r1|i-j|^r2 (model.kerple_variant)"},
       make_kerple},
      {{"fire", PeKind::kBias, "FIRE: learned MLP of psi(i-j)/psi(max(L,i)) (model.fire_*)"},
       make_fire},
      {{"cope", PeKind::kContextual, "CoPE: gates sigmoid(q.k) counted into positions"}, make_cope},
  };
  return entries;
}

}  // namespace

const std::vector<PeInfo>& pe_list() {
  static const std::vector<PeInfo> list = [] {
    std::vector<PeInfo> out;
    for (const auto& e : registry()) out.push_back(e.info);
    return out;
  }();
  return list;
}

std::vector<std::string> pe_names() {
  std::vector<std::string> names;
  for (const auto& e : registry()) names.push_back(e.info.name);
  return names;
}

PositionalEncodingPtr make_pe(const PeOptions& options) {
  for (const auto& e : registry())
    if (e.info.name == options.model.pe) return e.make(options);
  throw ConfigError(fmt::format("model.pe: unknown positional encoding '{}'; accepted: {}",
                                options.model.pe, fmt::join(pe_names(), ", ")));
}

}  // namespace pelab
