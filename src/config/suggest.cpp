#include "config/suggest.h"

#include <algorithm>
#include <numeric>

namespace pelab {

std::size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<std::size_t> row(b.size() + 1);
  std::iota(row.begin(), row.end(), 0);
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      std::size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] != b[j - 1] ? 1 : 0)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

std::string nearest(const std::string& word, const std::vector<std::string>& candidates) {
  std::string best;
  std::size_t best_distance = std::max<std::size_t>(3, word.size() / 3) + 1;
  for (const auto& c : candidates) {
    // A key typed without its section ("d_model" for "model.d_model") is also a near miss.
    auto dot = c.find('.');
    const bool section_dropped = dot != std::string::npos && c.substr(dot + 1) == word;
    // The edit distance is at least the difference in length, so a candidate that far off cannot
    // win; skipping it keeps a long unknown word (fuzzed input, a pasted line) from costing
    // length x length work per candidate.
    const std::size_t length_gap =
        word.size() > c.size() ? word.size() - c.size() : c.size() - word.size();
    if (!section_dropped && length_gap >= best_distance) continue;
    std::size_t d = section_dropped ? 1 : edit_distance(word, c);
    if (d < best_distance) {
      best_distance = d;
      best = c;
    }
  }
  return best;
}

}  // namespace pelab
