// "Did you mean ...?" for unknown keys and values.
#pragma once

#include <string>
#include <vector>

namespace pelab {

// Levenshtein edit distance.
std::size_t edit_distance(const std::string& a, const std::string& b);
// The candidate closest to `word`, or "" when none is close enough to be a plausible typo.
std::string nearest(const std::string& word, const std::vector<std::string>& candidates);

}  // namespace pelab
