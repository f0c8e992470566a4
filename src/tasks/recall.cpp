// Probe recall (associative recall): content only, but relational.
//
// Tokens: 0 = pad, 1 = the query marker, keys [2, 2 + K), values [2 + K, 2 + K + V), fillers
// [2 + K + V, vocab_size), with K = recall_keys and V = recall_values. A sequence of
// recall_length tokens holds recall_pairs adjacent "key value" pairs with distinct keys, placed
// among recall_length - 2 * recall_pairs - 2 fillers in a random order, and ends with the query
// marker and one of its keys:   f k1 v1 f f k2 v2 f ... k3 v3 f  Q k2   -> label = v2 - (2 + K).
// The label is the value paired with the queried key, in [0, V) = num_classes.
// Fillers never repeat a key, value or marker (task.fillers_may_be_triggers does not apply), so
// every label is unambiguous.
//
// Draw order per sample (part of the reproducibility contract): the distinct keys (a partial
// Fisher-Yates over the K keys), the values, the queried pair, the fillers, then a Fisher-Yates
// shuffle of the pairs and fillers as units.
//
// Longer (lengthen): recall_length grows by the extra length seq_len' - seq_len, all of it
// fillers; the pairs and the value range (the labels) stay.
#include <string>

#include "tasks/task.h"

namespace pelab {
namespace {

constexpr int64_t kQueryMarker = 1;
constexpr int64_t kFirstKey = 2;

void validate_recall(const TaskConfig& t) {
  require_task_key(t.recall_pairs <= t.recall_keys, "recall_pairs", t.recall_pairs,
                   "an integer <= task.recall_keys = " + std::to_string(t.recall_keys) +
                       " (the keys of a sequence are distinct)");
  require_task_key(
      t.recall_length >= 2 * t.recall_pairs + 2, "recall_length", t.recall_length,
      "an integer >= 2 * task.recall_pairs + 2 = " + std::to_string(2 * t.recall_pairs + 2) +
          " (the pairs, the query marker and the query key)");
  require_task_key(t.recall_length <= t.seq_len, "recall_length", t.recall_length,
                   "an integer <= task.seq_len = " + std::to_string(t.seq_len));
  const int64_t first_filler = kFirstKey + t.recall_keys + t.recall_values;
  const bool has_fillers = t.recall_length > 2 * t.recall_pairs + 2;
  require_task_key(
      t.vocab_size >= first_filler + (has_fillers ? 1 : 0), "vocab_size", t.vocab_size,
      "an integer >= " + std::to_string(first_filler + 1) +
          " for recall (0 = pad, 1 = query marker, then the keys, the values and at least "
          "one filler)");
}

Dataset generate_recall(const TaskConfig& task) {
  validate_recall(task);
  const int64_t n = task.samples, len = task.seq_len, body = task.recall_length;
  const int64_t keys = task.recall_keys, pairs = task.recall_pairs;
  const int64_t first_value = kFirstKey + keys;
  const int64_t first_filler = first_value + task.recall_values;
  const int64_t fillers = body - 2 * pairs - 2;

  torch::Tensor tokens = torch::zeros({n, len}, torch::kInt64);
  torch::Tensor lengths = torch::full({n}, body, torch::kInt64);
  torch::Tensor labels = torch::empty({n}, torch::kInt64);
  int64_t* tok = tokens.data_ptr<int64_t>();
  int64_t* lab = labels.data_ptr<int64_t>();

  std::vector<int64_t> key_pool(static_cast<size_t>(keys)), value(static_cast<size_t>(pairs)),
      filler(static_cast<size_t>(fillers)), units(static_cast<size_t>(pairs + fillers));
  std::mt19937_64 rng(static_cast<uint64_t>(task.seed));
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t k = 0; k < keys; ++k) key_pool[k] = kFirstKey + k;
    for (int64_t p = 0; p < pairs; ++p)  // partial Fisher-Yates: key_pool[0, pairs) distinct
      std::swap(key_pool[p], key_pool[uniform_int(rng, p, keys - 1)]);
    for (int64_t p = 0; p < pairs; ++p) value[p] = uniform_int(rng, first_value, first_filler - 1);
    const int64_t query = uniform_int(rng, 0, pairs - 1);
    for (int64_t f = 0; f < fillers; ++f)
      filler[f] = uniform_int(rng, first_filler, task.vocab_size - 1);
    // Units: p in [0, pairs) is pair p, p >= pairs is filler p - pairs.
    for (int64_t u = 0; u < pairs + fillers; ++u) units[u] = u;
    shuffle_in_place(rng, units.data(), pairs + fillers);
    int64_t* row = tok + i * len;
    int64_t pos = 0;
    for (int64_t u : units) {
      if (u < pairs) {
        row[pos++] = key_pool[u];
        row[pos++] = value[u];
      } else {
        row[pos++] = filler[u - pairs];
      }
    }
    row[pos++] = kQueryMarker;
    row[pos++] = key_pool[query];
    lab[i] = value[query] - first_value;
  }
  return Dataset{tokens, lengths, labels};
}

TaskConfig lengthen_recall(const TaskConfig& task, int64_t seq_len) {
  TaskConfig t = task;
  t.recall_length += extra_length(task, seq_len);
  t.seq_len = seq_len;
  return t;
}

}  // namespace

TaskInfo recall_task() {
  return {"recall",        "probe: the value paired with the queried key (content, relational)",
          generate_recall, [](const TaskConfig& t) { return t.recall_values; },
          lengthen_recall, [](const TaskConfig&) { return std::vector<int64_t>{kQueryMarker}; }};
}

}  // namespace pelab
