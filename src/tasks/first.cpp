// Probe first: the absolute position of the first trigger (absolute position).
//
// Tokens: 0 = pad, 1 = the trigger, fillers [2, vocab_size). A sequence of first_length tokens
// has its first trigger at p ~ U{first_position_min .. first_position_max} and
// m ~ U{0 .. min(first_triggers_max - 1, first_length - p - 1)} more triggers at distinct
// positions after p; every other token is a filler. The label is p (0-based), in
// [0, first_position_max] < num_classes = first_position_max + 1.
// Fillers never repeat the trigger (task.fillers_may_be_triggers does not apply).
//
// Draw order per sample (part of the reproducibility contract): p, m, a partial Fisher-Yates over
// the positions after p (the first m are the extra triggers), then the fillers left to right.
//
// Longer (lengthen): first_length grows by the extra length seq_len' - seq_len, all of it
// fillers after the trained window; the position range (the labels) stays.
#include <algorithm>
#include <string>

#include "tasks/task.h"

namespace pelab {
namespace {

constexpr int64_t kFirstTrigger = 1;
constexpr int64_t kFirstTaskFiller = 2;

void validate_first(const TaskConfig& t) {
  require_task_key(
      t.first_position_max >= t.first_position_min, "first_position_max", t.first_position_max,
      "an integer >= task.first_position_min = " + std::to_string(t.first_position_min));
  require_task_key(t.first_position_max < t.first_length, "first_position_max",
                   t.first_position_max,
                   "an integer < task.first_length = " + std::to_string(t.first_length));
  require_task_key(t.first_length <= t.seq_len, "first_length", t.first_length,
                   "an integer <= task.seq_len = " + std::to_string(t.seq_len));
  require_task_key(t.vocab_size > kFirstTaskFiller, "vocab_size", t.vocab_size,
                   "an integer >= 3 for first (0 = pad, 1 = trigger, fillers from 2)");
}

Dataset generate_first(const TaskConfig& task) {
  validate_first(task);
  const int64_t n = task.samples, len = task.seq_len, body = task.first_length;

  torch::Tensor tokens = torch::zeros({n, len}, torch::kInt64);
  torch::Tensor lengths = torch::full({n}, body, torch::kInt64);
  torch::Tensor labels = torch::empty({n}, torch::kInt64);
  int64_t* tok = tokens.data_ptr<int64_t>();
  int64_t* lab = labels.data_ptr<int64_t>();

  std::vector<int64_t> after(static_cast<size_t>(body));
  std::mt19937_64 rng(static_cast<uint64_t>(task.seed));
  for (int64_t i = 0; i < n; ++i) {
    int64_t* row = tok + i * len;
    const int64_t p = uniform_int(rng, task.first_position_min, task.first_position_max);
    const int64_t room = body - p - 1;  // positions after p
    const int64_t more = uniform_int(rng, 0, std::min(task.first_triggers_max - 1, room));
    for (int64_t j = 0; j < room; ++j) after[j] = p + 1 + j;
    for (int64_t j = 0; j < more; ++j) std::swap(after[j], after[uniform_int(rng, j, room - 1)]);
    for (int64_t j = 0; j < more; ++j) row[after[j]] = kFirstTrigger;
    row[p] = kFirstTrigger;
    for (int64_t q = 0; q < body; ++q)
      if (row[q] != kFirstTrigger) row[q] = uniform_int(rng, kFirstTaskFiller, task.vocab_size - 1);
    lab[i] = p;
  }
  return Dataset{tokens, lengths, labels};
}

TaskConfig lengthen_first(const TaskConfig& task, int64_t seq_len) {
  TaskConfig t = task;
  t.first_length += extra_length(task, seq_len);
  t.seq_len = seq_len;
  return t;
}

}  // namespace

TaskInfo first_task() {
  return {"first",        "probe: the absolute position of the first trigger (absolute position)",
          generate_first, [](const TaskConfig& t) { return t.first_position_max + 1; },
          lengthen_first, [](const TaskConfig&) { return std::vector<int64_t>{kFirstTrigger}; }};
}

}  // namespace pelab
