// Synthetic tasks that separate content from position (PAPER.md section 4) and the probes that
// ask one positional question each (docs/TASKS.md). A task turns a seeded TaskConfig into a
// Dataset; each generator is one file whose TaskInfo is one line of the registry
// (src/tasks/registry.cpp).
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "config/config.h"

namespace pelab {

inline constexpr int64_t kPadToken = 0;

struct Dataset {
  torch::Tensor tokens;   // [N, seq_len] int64, right-padded with kPadToken
  torch::Tensor lengths;  // [N] int64, tokens before the padding
  torch::Tensor labels;   // [N] int64 in [0, num_classes(task))
  int64_t size() const { return tokens.size(0); }
  Dataset index(const torch::Tensor& rows) const;  // rows: [M] int64
};

struct DatasetSplit {
  Dataset train;
  Dataset test;
};

// What the registry knows about a task; every function takes the whole TaskConfig and reads
// only its own task.* keys (and the shared ones: vocab_size, samples, seq_len, seed).
struct TaskInfo {
  std::string name;
  std::string summary;  // one line for docs and messages
  Dataset (*generate)(const TaskConfig&);
  int64_t (*classes)(const TaskConfig&);
  // The same task padded to seq_len >= task.seq_len with the label range unchanged: the extra
  // length goes to fillers, as each generator's file documents.
  TaskConfig (*lengthen)(const TaskConfig&, int64_t seq_len);
  std::vector<int64_t> (*triggers)(const TaskConfig&);  // the tokens that carry the label
};

// Every registered task, in a stable order.
const std::vector<TaskInfo>& task_list();
std::vector<std::string> task_names();
// Throws ConfigError naming the unknown task and the accepted names.
const TaskInfo& task_info(const std::string& name);

// The trigger tokens of a task (distance: {1, 2} = w1, w2; count: 1 .. count_triggers).
std::vector<int64_t> trigger_tokens(const TaskConfig& task);
// task at padded length seq_len (see TaskInfo::lengthen). Throws ConfigError for a length below
// the training length.
TaskConfig lengthen_task(const TaskConfig& task, int64_t seq_len);

// Generates config.samples sequences, deterministic in config.seed. Throws ConfigError when the
// generator parameters are inconsistent (ranges, vocabulary too small, sequences not fitting).
Dataset generate_task(const TaskConfig& task);
// Shuffles rows with split_seed and cuts the first train_fraction into the training set.
DatasetSplit split_dataset(const Dataset& all, const TaskConfig& task);

// Per task: one file each, returning its registry entry.
TaskInfo distance_task();
TaskInfo count_task();
TaskInfo recall_task();
TaskInfo first_task();
TaskInfo order_task();
TaskInfo offset_task();

// Shared by the generators: throws ConfigError "task.KEY: invalid value V; accepted: ACCEPTED"
// unless ok.
void require_task_key(bool ok, const std::string& key, int64_t value, const std::string& accepted);
// The extra length a lengthen() call adds (seq_len - task.seq_len), refusing a shorter length.
int64_t extra_length(const TaskConfig& task, int64_t seq_len);

// Uniform integer in [lo, hi] (lo <= hi) by Lemire's multiply-shift with rejection, so the draws
// are the same on every standard library (std::uniform_int_distribution is implementation-defined).
int64_t uniform_int(std::mt19937_64& rng, int64_t lo, int64_t hi);
// Fisher-Yates shuffle of values[0, n) driven by uniform_int (portable, unlike std::shuffle).
void shuffle_in_place(std::mt19937_64& rng, int64_t* values, int64_t n);

}  // namespace pelab
