// Task 2, trigger count (PAPER.md section 4): content only.
//
// The trigger set is the tokens 1 .. count_triggers. Each sequence has count_length tokens:
// k ~ U{count_min .. count_max} triggers drawn with replacement from the trigger set and
// count_length - k fillers, shuffled together and right-padded with kPadToken (0) to seq_len.
// The label is k, in [count_min, count_max] < num_classes = count_max + 1.
// Fillers come from the non-trigger tokens [count_triggers + 1, vocab_size) by default. With
// fillers_may_be_triggers (the authors' generator) they come from [1, vocab_size); the label stays
// the number of *planted* triggers k, as in the authors' code, so a sequence whose fillers happen
// to hit the trigger set holds more triggers than its label says (an ambiguous sample).
//
// Draw order per sample (part of the reproducibility contract): k, the k triggers, the fillers,
// then a Fisher-Yates shuffle of the count_length positions (shuffle_in_place).
//
// Longer (lengthen): count_length grows by the extra length seq_len' - seq_len, all of it
// fillers; the count range (the labels) stays.
#include <algorithm>
#include <numeric>
#include <string>

#include "tasks/task.h"

namespace pelab {
namespace {

void validate_count(const TaskConfig& t) {
  require_task_key(t.count_triggers >= 1, "count_triggers", t.count_triggers, "an integer >= 1");
  require_task_key(
      t.vocab_size > t.count_triggers + 1, "vocab_size", t.vocab_size,
      "an integer > task.count_triggers + 1 = " + std::to_string(t.count_triggers + 1) +
          " (0 = pad, 1..count_triggers = triggers, at least one filler token)");
  require_task_key(t.count_min >= 0, "count_min", t.count_min, "an integer >= 0");
  require_task_key(t.count_max >= t.count_min, "count_max", t.count_max,
                   "an integer >= task.count_min = " + std::to_string(t.count_min));
  require_task_key(t.count_max <= t.count_length, "count_max", t.count_max,
                   "an integer <= task.count_length = " + std::to_string(t.count_length));
  require_task_key(t.count_length >= 1, "count_length", t.count_length, "an integer >= 1");
  require_task_key(t.count_length <= t.seq_len, "count_length", t.count_length,
                   "an integer <= task.seq_len = " + std::to_string(t.seq_len));
}

Dataset generate_count(const TaskConfig& task) {
  validate_count(task);
  const int64_t n = task.samples;
  const int64_t len = task.seq_len;
  const int64_t body = task.count_length;
  const int64_t filler_lo = task.fillers_may_be_triggers ? 1 : task.count_triggers + 1;
  const int64_t filler_hi = task.vocab_size - 1;

  torch::Tensor tokens = torch::zeros({n, len}, torch::kInt64);
  torch::Tensor lengths = torch::full({n}, body, torch::kInt64);
  torch::Tensor labels = torch::empty({n}, torch::kInt64);
  int64_t* tok = tokens.data_ptr<int64_t>();
  int64_t* lab = labels.data_ptr<int64_t>();

  std::mt19937_64 rng(static_cast<uint64_t>(task.seed));
  for (int64_t i = 0; i < n; ++i) {
    const int64_t k = uniform_int(rng, task.count_min, task.count_max);
    int64_t* row = tok + i * len;
    for (int64_t p = 0; p < k; ++p) row[p] = uniform_int(rng, 1, task.count_triggers);
    for (int64_t p = k; p < body; ++p) row[p] = uniform_int(rng, filler_lo, filler_hi);
    shuffle_in_place(rng, row, body);
    lab[i] = k;
  }
  return Dataset{tokens, lengths, labels};
}

TaskConfig lengthen_count(const TaskConfig& task, int64_t seq_len) {
  TaskConfig t = task;
  t.count_length += extra_length(task, seq_len);
  t.seq_len = seq_len;
  return t;
}

std::vector<int64_t> count_triggers(const TaskConfig& task) {
  std::vector<int64_t> out(static_cast<size_t>(std::max<int64_t>(task.count_triggers, 0)));
  std::iota(out.begin(), out.end(), int64_t{1});
  return out;
}

}  // namespace

TaskInfo count_task() {
  return {"count",        "Task 2: how many trigger tokens a sequence holds (content only)",
          generate_count, [](const TaskConfig& t) { return t.count_max + 1; },
          lengthen_count, count_triggers};
}

}  // namespace pelab
