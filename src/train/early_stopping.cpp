#include "train/early_stopping.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>

namespace pelab {
namespace fs = std::filesystem;

TrainingSets carve_validation(const Dataset& train, double fraction, int64_t seed) {
  const int64_t n = train.size();
  const int64_t n_validation = static_cast<int64_t>(std::llround(fraction * double(n)));
  if (n_validation <= 0) return {train, train.index(torch::empty({0}, torch::kInt64))};
  std::vector<int64_t> order(n);
  for (int64_t i = 0; i < n; ++i) order[i] = i;
  // A stream of its own, so the carve never shifts the train/test split's draws.
  std::mt19937_64 rng(static_cast<uint64_t>(seed) ^ 0x56414C4944415445ULL);  // "VALIDATE"
  shuffle_in_place(rng, order.data(), n);
  std::vector<int64_t> held(order.begin(), order.begin() + n_validation);
  std::vector<int64_t> kept(order.begin() + n_validation, order.end());
  std::sort(held.begin(), held.end());
  std::sort(kept.begin(), kept.end());
  return {train.index(torch::tensor(kept, torch::kInt64)),
          train.index(torch::tensor(held, torch::kInt64))};
}

TrainingSets training_sets(const Dataset& train, const Config& config) {
  return carve_validation(train, config.train.validation_fraction, config.task.split_seed);
}

StoppingState stopping_state(const std::vector<EpochMetrics>& history, const TrainConfig& train) {
  StoppingState s;
  double reference = -std::numeric_limits<double>::infinity();
  double best = -std::numeric_limits<double>::infinity();
  for (const auto& m : history) {
    if (!m.validation_accuracy) continue;
    const double v = *m.validation_accuracy;
    if (v > best) best = v, s.best_epoch = m.epoch;
    if (v > reference + train.min_delta) reference = v, s.last_improvement_epoch = m.epoch;
  }
  const int64_t done = history.empty() ? 0 : history.back().epoch;
  if (train.patience > 0 && s.best_epoch > 0 && done - s.last_improvement_epoch >= train.patience)
    s.stop_reason = "plateau";
  else if (done >= train.epochs)
    s.stop_reason = "ceiling";
  return s;
}

bool training_finished(const std::vector<EpochMetrics>& history, const TrainConfig& train) {
  return !stopping_state(history, train).stop_reason.empty();
}

const EpochMetrics& reported_epoch(const std::vector<EpochMetrics>& history) {
  const EpochMetrics* best = &history.back();
  for (const auto& m : history)
    if (m.validation_accuracy &&
        (!best->validation_accuracy || *m.validation_accuracy > *best->validation_accuracy ||
         (*m.validation_accuracy == *best->validation_accuracy && m.epoch < best->epoch)))
      best = &m;
  return *best;
}

void note_stopping_state(TrainState& state, const fs::path& run_dir) {
  EpochMetrics& m = state.history.back();
  const StoppingState s = stopping_state(state.history, state.config.train);
  m.stop_reason = s.stop_reason;
  if (!m.validation_accuracy) return;
  m.best_epoch = s.best_epoch;
  if (s.best_epoch == m.epoch) save_checkpoint(state, best_checkpoint_path(run_dir));
}

std::string stopping_summary(const EpochMetrics& m) {
  std::string out;
  if (m.validation_accuracy)
    out = fmt::format("  val_acc {:.4f} (best epoch {})", *m.validation_accuracy, m.best_epoch);
  if (!m.stop_reason.empty()) out += fmt::format("  stop: {}", m.stop_reason);
  return out;
}

fs::path best_checkpoint_path(const fs::path& run_dir) { return run_dir / "best.pt"; }

fs::path reported_checkpoint_path(const fs::path& run_dir) {
  const fs::path best = best_checkpoint_path(run_dir);
  return fs::exists(best) ? best : checkpoint_path(run_dir);
}

}  // namespace pelab
