// What a sweep run's folder holds, as every backend (local workers, Slurm array elements, the
// collect step) reads it. The folder, not the store, is the truth about training progress:
// array elements on a cluster never open the store.
#pragma once

#include <filesystem>
#include <vector>

#include "sweep/sweep_spec.h"
#include "train/checkpoint.h"
#include "train/early_stopping.h"

namespace pelab {

struct RunFolder {
  bool has_checkpoint = false;
  bool has_config = false;         // config.toml (a run killed before its first checkpoint)
  std::vector<EpochMetrics> done;  // metrics.json's epochs
  int64_t threads = 0;             // train.threads the folder's run uses
  bool extend_epochs = false;      // the sweep asks for more epochs than the folder's config
  // Finished by the run's own rule: the epoch ceiling, or a validation plateau.
  bool complete(const SweepRun& run) const { return training_finished(done, run.config.train); }
};

// Epochs recorded in a run folder's metrics.json (none when missing or unreadable).
std::vector<EpochMetrics> folder_metrics(const std::filesystem::path& run_dir);

// Reads the run's folder. Throws ConfigError when it holds a run with another config than the
// sweep's (train.threads and train.checkpoint_every_s may differ; train.epochs may grow).
RunFolder inspect_run_folder(const SweepSpec& spec, const SweepRun& run);

}  // namespace pelab
