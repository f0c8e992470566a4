// Task 1, trigger distance (PAPER.md section 4): content and position coupled.
//
// Every sequence is  [left fillers] w1 [between fillers] w2 [right fillers]  with w1 = 1, w2 = 2,
// right-padded with kPadToken (0) to seq_len. The label is the distance between the triggers,
// 1 + between, so it lies in [between_min + 1, between_max + 1] < num_classes = between_max + 2.
// Fillers come from the non-trigger tokens [3, vocab_size) by default; with
// fillers_may_be_triggers (the authors' generator) from [1, vocab_size), so a filler may repeat a
// trigger and the label (still the planted distance) becomes ambiguous for such sequences.
//
// Draw order per sample (part of the reproducibility contract): left, between, right, then the
// fillers from left to right.
//
// Longer (lengthen): the extra length e = seq_len' - seq_len widens the margins, e/2 (rounded
// down) more fillers on the left and the rest on the right, min and max alike, so every sequence
// is exactly e tokens longer than it could be in training; the distance range (the labels) stays.
#include <string>

#include "tasks/task.h"

namespace pelab {
namespace {

constexpr int64_t kW1 = 1;
constexpr int64_t kW2 = 2;
constexpr int64_t kFirstNonTrigger = 3;

void check_range(const std::string& part, int64_t lo, int64_t hi) {
  const std::string min_key = "distance_" + part + "_min";
  const std::string max_key = "distance_" + part + "_max";
  require_task_key(lo >= 0, min_key, lo, "an integer >= 0");
  require_task_key(hi >= lo, max_key, hi,
                   "an integer >= task." + min_key + " = " + std::to_string(lo));
}

void validate_distance(const TaskConfig& t) {
  check_range("left", t.distance_left_min, t.distance_left_max);
  check_range("between", t.distance_between_min, t.distance_between_max);
  check_range("right", t.distance_right_min, t.distance_right_max);
  require_task_key(
      t.vocab_size > kFirstNonTrigger, "vocab_size", t.vocab_size,
      "an integer >= 4 for the distance task (0 = pad, 1 and 2 = triggers, fillers from 3)");
  const int64_t longest = t.distance_left_max + t.distance_between_max + t.distance_right_max + 2;
  if (longest > t.seq_len) {
    throw ConfigError("task.distance_between_max: value " + std::to_string(t.distance_between_max) +
                      " makes the longest sequence distance_left_max + distance_between_max + "
                      "distance_right_max + 2 = " +
                      std::to_string(longest) +
                      " exceed task.seq_len = " + std::to_string(t.seq_len) +
                      "; accepted: left_max + between_max + right_max + 2 <= seq_len");
  }
}

Dataset generate_distance(const TaskConfig& task) {
  validate_distance(task);
  const int64_t n = task.samples;
  const int64_t len = task.seq_len;
  const int64_t filler_lo = task.fillers_may_be_triggers ? 1 : kFirstNonTrigger;
  const int64_t filler_hi = task.vocab_size - 1;

  torch::Tensor tokens = torch::zeros({n, len}, torch::kInt64);
  torch::Tensor lengths = torch::empty({n}, torch::kInt64);
  torch::Tensor labels = torch::empty({n}, torch::kInt64);
  int64_t* tok = tokens.data_ptr<int64_t>();
  int64_t* lng = lengths.data_ptr<int64_t>();
  int64_t* lab = labels.data_ptr<int64_t>();

  std::mt19937_64 rng(static_cast<uint64_t>(task.seed));
  for (int64_t i = 0; i < n; ++i) {
    const int64_t left = uniform_int(rng, task.distance_left_min, task.distance_left_max);
    const int64_t between = uniform_int(rng, task.distance_between_min, task.distance_between_max);
    const int64_t right = uniform_int(rng, task.distance_right_min, task.distance_right_max);
    const int64_t total = left + between + right + 2;
    int64_t* row = tok + i * len;
    const int64_t w2_pos = left + 1 + between;
    for (int64_t p = 0; p < total; ++p) {
      row[p] = p == left ? kW1 : p == w2_pos ? kW2 : uniform_int(rng, filler_lo, filler_hi);
    }
    lng[i] = total;
    lab[i] = 1 + between;
  }
  return Dataset{tokens, lengths, labels};
}

TaskConfig lengthen_distance(const TaskConfig& task, int64_t seq_len) {
  const int64_t extra = extra_length(task, seq_len);
  TaskConfig t = task;
  t.seq_len = seq_len;
  t.distance_left_min += extra / 2;
  t.distance_left_max += extra / 2;
  t.distance_right_min += extra - extra / 2;
  t.distance_right_max += extra - extra / 2;
  return t;
}

}  // namespace

TaskInfo distance_task() {
  return {
      "distance",        "Task 1: the distance between triggers w1 and w2 (content and position)",
      generate_distance, [](const TaskConfig& t) { return t.distance_between_max + 2; },
      lengthen_distance, [](const TaskConfig&) { return std::vector<int64_t>{kW1, kW2}; }};
}

}  // namespace pelab
