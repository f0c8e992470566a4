// Run folders and checkpoints. A run folder holds:
//   config.toml     the resolved configuration (every key)
//   checkpoint.pt   model, optimiser, schedule position, RNG state, config and metric history,
//                   written atomically at the end of every epoch, every train.checkpoint_every_s
//                   inside one, and when a signal stops training (docs/CHECKPOINTS.md)
//   metrics.json    the per-epoch metric history, rewritten atomically with each checkpoint
#pragma once

#include <torch/torch.h>

#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "config/config.h"
#include "model/transformer.h"

namespace pelab {

class CheckpointError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct EpochMetrics {
  int64_t epoch = 0;  // 1-based
  double train_loss = 0, train_accuracy = 0;
  double test_loss = 0, test_accuracy = 0;
  double lr = 0;       // learning rate at the epoch's last step
  double seconds = 0;  // wall time of the epoch (training + evaluation)
  double train_samples_per_s = 0;
  // With train.validation_fraction > 0 (train/early_stopping.h): the held-out numbers, the best
  // epoch so far and, on the epoch after which training stopped, why ("plateau" or "ceiling").
  std::optional<double> validation_loss, validation_accuracy;
  int64_t best_epoch = 0;
  std::string stop_reason;
  // Per-epoch analysis when train.track_spectra is on (null otherwise); written as "analysis".
  nlohmann::json analysis;
};

// The running sums of a partly trained epoch, so a resumed epoch reports the same numbers.
struct EpochProgress {
  int64_t step = 0;  // optimiser steps of the epoch done (0 = at an epoch boundary)
  double loss_sum = 0;
  int64_t correct = 0, seen = 0;
  double train_seconds = 0;
};

// Everything needed to continue a run exactly.
struct TrainState {
  Config config;
  Transformer model{nullptr};
  std::unique_ptr<torch::optim::AdamW> optimizer;
  int64_t epochs_done = 0;
  int64_t steps_done = 0;
  EpochProgress epoch_progress;  // of epoch epochs_done + 1
  std::vector<EpochMetrics> history;
};

inline constexpr const char* kCheckpointFormat = "pelab-checkpoint-v1";
std::filesystem::path checkpoint_path(const std::filesystem::path& run_dir);

std::unique_ptr<torch::optim::AdamW> make_optimizer(const Config& config, Transformer& model);
// A fresh state: model seeded with train.seed, new optimiser, nothing done.
TrainState fresh_state(const Config& config);

// Atomic: written to a temporary file in the same folder, then renamed over the old one.
void save_checkpoint(const TrainState& state, const std::filesystem::path& file);
// Refuses missing, corrupt, foreign or mismatched files with a CheckpointError naming the file
// and the problem.
TrainState load_checkpoint(const std::filesystem::path& file);

std::string metrics_to_json(const std::vector<EpochMetrics>& history);
std::vector<EpochMetrics> metrics_from_json(const std::string& text);

// Writes `contents` to `file` atomically (temporary file + rename).
void write_file_atomically(const std::filesystem::path& file, const std::string& contents);

}  // namespace pelab
