// Synthetic tasks that separate content from position (PAPER.md section 4).
// A task turns a seeded TaskConfig into a Dataset; each generator is one file behind
// generate_task().
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

// The trigger tokens of a task (distance: {1, 2} = w1, w2; count: 1 .. count_triggers).
std::vector<int64_t> trigger_tokens(const TaskConfig& task);

// Generates config.samples sequences, deterministic in config.seed. Throws ConfigError when the
// generator parameters are inconsistent (ranges, vocabulary too small, sequences not fitting).
Dataset generate_task(const TaskConfig& task);
// Shuffles rows with split_seed and cuts the first train_fraction into the training set.
DatasetSplit split_dataset(const Dataset& all, const TaskConfig& task);

// Per task: one file each (distance.cpp, count.cpp).
Dataset generate_distance(const TaskConfig& task);
Dataset generate_count(const TaskConfig& task);

// Uniform integer in [lo, hi] (lo <= hi) by Lemire's multiply-shift with rejection, so the draws
// are the same on every standard library (std::uniform_int_distribution is implementation-defined).
int64_t uniform_int(std::mt19937_64& rng, int64_t lo, int64_t hi);
// Fisher-Yates shuffle of values[0, n) driven by uniform_int (portable, unlike std::shuffle).
void shuffle_in_place(std::mt19937_64& rng, int64_t* values, int64_t n);

}  // namespace pelab
