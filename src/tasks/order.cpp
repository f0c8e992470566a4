// Probe order: which of two distinct triggers comes first (relative order, without distance).
//
// Tokens: 0 = pad, A = 1 and B = 2 the triggers, fillers [3, vocab_size). A sequence of
// order_length tokens holds A once and B once at two distinct uniform positions i (A) and j (B);
// every other token is a filler. The label is 0 when A comes first (i < j) and 1 otherwise
// (num_classes = 2). Fillers never repeat a trigger (task.fillers_may_be_triggers does not
// apply).
//
// Draw order per sample (part of the reproducibility contract): i ~ U{0..L-1},
// j' ~ U{0..L-2} (j = j' + 1 when j' >= i), then the fillers left to right.
//
// Longer (lengthen): order_length grows by the extra length seq_len' - seq_len; the triggers
// spread over the whole longer sequence, the labels stay {0, 1}.
#include <string>

#include "tasks/task.h"

namespace pelab {
namespace {

constexpr int64_t kA = 1;
constexpr int64_t kB = 2;
constexpr int64_t kOrderFirstFiller = 3;

void validate_order(const TaskConfig& t) {
  require_task_key(t.order_length <= t.seq_len, "order_length", t.order_length,
                   "an integer <= task.seq_len = " + std::to_string(t.seq_len));
  require_task_key(t.vocab_size > kOrderFirstFiller, "vocab_size", t.vocab_size,
                   "an integer >= 4 for order (0 = pad, 1 and 2 = triggers, fillers from 3)");
}

Dataset generate_order(const TaskConfig& task) {
  validate_order(task);
  const int64_t n = task.samples, len = task.seq_len, body = task.order_length;

  torch::Tensor tokens = torch::zeros({n, len}, torch::kInt64);
  torch::Tensor lengths = torch::full({n}, body, torch::kInt64);
  torch::Tensor labels = torch::empty({n}, torch::kInt64);
  int64_t* tok = tokens.data_ptr<int64_t>();
  int64_t* lab = labels.data_ptr<int64_t>();

  std::mt19937_64 rng(static_cast<uint64_t>(task.seed));
  for (int64_t s = 0; s < n; ++s) {
    int64_t* row = tok + s * len;
    const int64_t i = uniform_int(rng, 0, body - 1);
    int64_t j = uniform_int(rng, 0, body - 2);
    if (j >= i) ++j;
    for (int64_t p = 0; p < body; ++p)
      row[p] = p == i ? kA : p == j ? kB : uniform_int(rng, kOrderFirstFiller, task.vocab_size - 1);
    lab[s] = i < j ? 0 : 1;
  }
  return Dataset{tokens, lengths, labels};
}

TaskConfig lengthen_order(const TaskConfig& task, int64_t seq_len) {
  TaskConfig t = task;
  t.order_length += extra_length(task, seq_len);
  t.seq_len = seq_len;
  return t;
}

}  // namespace

TaskInfo order_task() {
  return {"order",        "probe: which of two distinct triggers comes first (relative order)",
          generate_order, [](const TaskConfig&) { return int64_t{2}; },
          lengthen_order, [](const TaskConfig&) { return std::vector<int64_t>{kA, kB}; }};
}

}  // namespace pelab
