// Probe offset: the token o places after the unique trigger, o named by a marker token (content
// selected by relative position).
//
// Tokens: 0 = pad, 1 = the trigger, the markers [2, 2 + M) with M = offset_max - offset_min + 1
// (marker 2 + o - offset_min names offset o), the content tokens [2 + M, 2 + M + V) with
// V = offset_values; tokens from 2 + M + V on are unused. A sequence of offset_length tokens has
// o ~ U{offset_min .. offset_max}, the trigger at t ~ U{0 .. offset_length - 1 - o}, the marker
// at a uniform position other than t and t + o, and content tokens everywhere else, the target
// t + o included. The label is the target's content index, row[t + o] - (2 + M), in [0, V)
// = num_classes. Every non-special token is content, so the target is found only by position.
// task.fillers_may_be_triggers does not apply.
//
// Draw order per sample (part of the reproducibility contract): o, t, the marker's position among
// the offset_length - 2 free ones, then the content tokens left to right.
//
// Longer (lengthen): offset_length grows by the extra length seq_len' - seq_len (more content
// tokens around the trigger); the offset range and the content range (the labels) stay.
#include <string>

#include "tasks/task.h"

namespace pelab {
namespace {

constexpr int64_t kOffsetTrigger = 1;
constexpr int64_t kFirstMarker = 2;

int64_t markers(const TaskConfig& t) { return t.offset_max - t.offset_min + 1; }

void validate_offset(const TaskConfig& t) {
  require_task_key(t.offset_max >= t.offset_min, "offset_max", t.offset_max,
                   "an integer >= task.offset_min = " + std::to_string(t.offset_min));
  require_task_key(t.offset_length >= t.offset_max + 2, "offset_length", t.offset_length,
                   "an integer >= task.offset_max + 2 = " + std::to_string(t.offset_max + 2) +
                       " (trigger, target and marker)");
  require_task_key(t.offset_length <= t.seq_len, "offset_length", t.offset_length,
                   "an integer <= task.seq_len = " + std::to_string(t.seq_len));
  const int64_t needed = kFirstMarker + markers(t) + t.offset_values;
  require_task_key(t.vocab_size >= needed, "vocab_size", t.vocab_size,
                   "an integer >= " + std::to_string(needed) +
                       " for offset (0 = pad, 1 = trigger, one marker per offset, then the content "
                       "tokens)");
}

Dataset generate_offset(const TaskConfig& task) {
  validate_offset(task);
  const int64_t n = task.samples, len = task.seq_len, body = task.offset_length;
  const int64_t first_content = kFirstMarker + markers(task);

  torch::Tensor tokens = torch::zeros({n, len}, torch::kInt64);
  torch::Tensor lengths = torch::full({n}, body, torch::kInt64);
  torch::Tensor labels = torch::empty({n}, torch::kInt64);
  int64_t* tok = tokens.data_ptr<int64_t>();
  int64_t* lab = labels.data_ptr<int64_t>();

  std::mt19937_64 rng(static_cast<uint64_t>(task.seed));
  for (int64_t s = 0; s < n; ++s) {
    int64_t* row = tok + s * len;
    const int64_t o = uniform_int(rng, task.offset_min, task.offset_max);
    const int64_t t = uniform_int(rng, 0, body - 1 - o);
    int64_t m = uniform_int(rng, 0, body - 3);  // skip t and t + o (t < t + o)
    if (m >= t) ++m;
    if (m >= t + o) ++m;
    for (int64_t p = 0; p < body; ++p) {
      row[p] = p == t   ? kOffsetTrigger
               : p == m ? kFirstMarker + (o - task.offset_min)
                        : uniform_int(rng, first_content, first_content + task.offset_values - 1);
    }
    lab[s] = row[t + o] - first_content;
  }
  return Dataset{tokens, lengths, labels};
}

TaskConfig lengthen_offset(const TaskConfig& task, int64_t seq_len) {
  TaskConfig t = task;
  t.offset_length += extra_length(task, seq_len);
  t.seq_len = seq_len;
  return t;
}

std::vector<int64_t> offset_triggers(const TaskConfig& task) {
  std::vector<int64_t> out{kOffsetTrigger};
  for (int64_t k = 0; k < markers(task); ++k) out.push_back(kFirstMarker + k);
  return out;
}

}  // namespace

TaskInfo offset_task() {
  return {"offset",
          "probe: the token a marker-named offset after the trigger (relative position)",
          generate_offset,
          [](const TaskConfig& t) { return t.offset_values; },
          lengthen_offset,
          offset_triggers};
}

}  // namespace pelab
