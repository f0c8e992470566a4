// Training to convergence without looking at the test split.
//
// train.validation_fraction carves a validation set out of the train split (a seeded choice of
// rows, the same for every run of a task configuration). After each epoch the trainer scores it;
// the stopping state below is a pure function of the metric history and the config, so a resumed
// run stops exactly where an uninterrupted one would:
//   improvement at epoch e:  validation accuracy > reference + train.min_delta, where the
//                            reference is the accuracy of the last improving epoch (-inf at first)
//   plateau:                 train.patience > 0 and patience epochs since the last improvement
//   ceiling:                 train.epochs done
//   best epoch:              the highest validation accuracy (the earliest on ties)
// The best epoch's model is kept as its own checkpoint (best.pt), and it is the run's reported
// model: eval, ablate, removal, spectrum --run, export and reproduce's analyses load it, and the
// store records its test accuracy as the run's final accuracy. Without a validation set there is
// no best.pt and the last epoch is reported, as before.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "tasks/task.h"
#include "train/checkpoint.h"

namespace pelab {

struct TrainingSets {
  Dataset fit;         // the rows the optimiser sees
  Dataset validation;  // empty (size 0) when train.validation_fraction is 0
};

// Holds out round(fraction x N) rows of `train`, chosen by a shuffle seeded with `seed`; both
// sets keep the rows' original order.
TrainingSets carve_validation(const Dataset& train, double fraction, int64_t seed);
// The sets a config trains on (seeded with task.split_seed, so every PE and seed of a task
// configuration shares one validation set).
TrainingSets training_sets(const Dataset& train, const Config& config);

struct StoppingState {
  int64_t best_epoch = 0;              // 0 = no validation numbers
  int64_t last_improvement_epoch = 0;  // by more than min_delta
  std::string stop_reason;             // "plateau", "ceiling" or "" (still training)
};
StoppingState stopping_state(const std::vector<EpochMetrics>& history, const TrainConfig& train);
// True when the rule says no more epochs: a plateau or the ceiling.
bool training_finished(const std::vector<EpochMetrics>& history, const TrainConfig& train);

// The epoch whose model the run reports: the best validation epoch when the history has
// validation numbers, else the last epoch. The history must not be empty.
const EpochMetrics& reported_epoch(const std::vector<EpochMetrics>& history);

// Called by the trainer after each epoch is appended to state.history (epochs_done updated):
// records the best epoch and the stop reason on that epoch's metrics and, when it is the best
// so far, writes best.pt (before checkpoint.pt, so that a kill between the two writes re-trains
// the epoch and rewrites both).
void note_stopping_state(TrainState& state, const std::filesystem::path& run_dir);
// "  val_acc 0.8123 (best epoch 7)" for the per-epoch line, plus "  stop: plateau" at the end;
// "" without a validation set and before the stop.
std::string stopping_summary(const EpochMetrics& m);

std::filesystem::path best_checkpoint_path(const std::filesystem::path& run_dir);
// best.pt when the run keeps one, else checkpoint.pt.
std::filesystem::path reported_checkpoint_path(const std::filesystem::path& run_dir);

}  // namespace pelab
