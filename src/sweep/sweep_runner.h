// Runs a sweep's runs in worker processes and records them in the store.
//
// Resumable: a run whose folder holds every epoch's metrics and whose store row says finished is
// skipped; one whose folder is complete but whose store row is not (the sweep died between the
// two) is only ingested; one with a checkpoint continues from it (pelab train --resume); any other
// starts afresh. A run is marked finished only after its metrics are in the store, in the same
// transaction, so a kill at any moment loses at most the epochs after each run's last checkpoint.
#pragma once

#include <cstdint>
#include <filesystem>

#include "store/store.h"
#include "sweep/sweep_spec.h"

namespace pelab {

struct SweepOptions {
  int64_t workers = 1;
  bool progress = true;          // a line on stderr per run started and ended
  std::filesystem::path binary;  // the pelab executable; "" = this process's own
};

struct SweepSummary {
  int64_t total = 0;
  int64_t skipped = 0;   // already finished before this call
  int64_t finished = 0;  // finished (trained or ingested) by this call
  int64_t failed = 0;
  int64_t remaining = 0;  // left queued by an interruption
  bool interrupted = false;
  double seconds = 0;
};

// Cores this process may use (its CPU affinity), at least 1.
int64_t available_cores();
// max(1, available_cores() / workers): the train.threads each worker gets.
int64_t threads_per_worker(int64_t workers);

// Runs (or resumes) every run of the sweep. SIGINT and SIGTERM stop the workers, leave their
// checkpoints and mark their runs queued (summary.interrupted). Holds <out_dir>/.sweep.lock while
// it runs, so two sweeps never train into the same folders; throws StoreError or ConfigError for
// problems found before anything starts (a run folder holding a different config, the lock held).
SweepSummary run_sweep(const SweepSpec& spec, const std::vector<SweepRun>& runs, Store& store,
                       const SweepOptions& options);

// Records what the run folders hold, training nothing (`pelab sweep FILE --collect`; the Slurm
// backend's last job): complete folders go into the store as finished (metrics and status in one
// transaction); the others are marked interrupted (the folder holds a checkpoint or a config:
// resumable) or queued (nothing yet). summary.remaining counts the unfinished ones.
SweepSummary collect_sweep(const SweepSpec& spec, const std::vector<SweepRun>& runs, Store& store,
                           bool progress);

}  // namespace pelab
