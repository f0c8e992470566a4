#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace pelab {

// Slopes m_h for h = 0..heads-1. rule "standard": 2^(-8(h+1)/H) for H a power of two; otherwise,
// with n = 2^floor(log2 H), the n standard slopes followed by every other slope of the 2n rule,
// H - n of them (Press et al., the ALiBi reference code). rule "paper": exp(-h/H) (the authors').
std::vector<double> alibi_slopes(int64_t heads, const std::string& rule);

}  // namespace pelab
