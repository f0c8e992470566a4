// The paper's reported numbers (shared/PAPER.md section 7), the one table the report's "paper"
// column and claims.json's `paper` field read. "(fig)" numbers were read from the figures'
// pixels (about +-0.01). The figures and the table are not always the same runs; they are
// quoted as the paper gives them, not reconciled. The paper's shape: 6 layers, 16 heads of 16,
// Task 1 with 70 distance labels (chance 0.014, length-only Bayes accuracy 0.054), Task 2 with
// labels 0..100.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace pelab {

struct PaperAccuracy {
  std::string pe, task;       // pelab names: "rope", "distance"
  int64_t rotary_heads = -1;  // RoPE on the first k of 16 heads; -1 = every head / not rotary
  double accuracy = 0;        // test accuracy
  std::string source;         // "Table", "Fig. 2 (fig), epoch 100", ...
};

const std::vector<PaperAccuracy>& paper_accuracies();
// The paper's test accuracy for a cell, or null when it reports none. Partial RoPE is matched
// only for a model of the paper's 16 heads (k of 4 heads is another experiment).
const PaperAccuracy* paper_accuracy(const std::string& pe, const std::string& task,
                                    int64_t rotary_heads, int64_t n_heads);

// The paper's numbers behind a claim (claims.h ids): {"text": what it reports, "numbers": {...}}.
// Every claim has one; a claim the paper states without numbers says so in "text".
nlohmann::json paper_for_claim(const std::string& claim_id);

}  // namespace pelab
