// `pelab reproduce --scale S --dry-run`: what a scale would run and what it would cost on this
// machine, without training anything.
//
// Per run: samples per epoch (train split less the validation set) x epochs. Two bounds: the
// ceiling (train.epochs) and the plan's expected_epochs (what early stopping has been seen to
// stop after at this shape; the ceiling when the plan does not say). Hours = samples /
// (train_samples_per_s x workers), from the plan's measured one-worker speed. Analyses, in
// forward passes over analysis_samples (or the split): head ablation shares each layer's prefix,
// so its L x H branches cost H x (L + 1) / 2 forwards plus the baseline; removal (absolute PEs)
// (1 + removal_draws) x (L + 1) / 2. Evaluation runs at about 3x the training speed (a forward
// pass without the backward), an assumption stated here, not measured per run.
#pragma once

#include <string>
#include <vector>

#include "reproduce/reproduce.h"

namespace pelab {

struct DryRunEntry {
  std::string sweep, run;
  int64_t samples_per_epoch = 0, ceiling_epochs = 0, expected_epochs = 0;
  int64_t analysis_samples = 0;  // forward-pass samples of the run's analyses
};

struct DryRun {
  std::string scale;
  int64_t workers = 1;
  double train_samples_per_s = 0;  // 0 = the plan has no measured speed
  std::vector<DryRunEntry> runs;
  int64_t ceiling_samples() const;
  int64_t expected_samples() const;
  int64_t analysis_samples() const;
  // NaN without a measured speed.
  double hours(int64_t train_samples, int64_t analysis_samples) const;
};

DryRun plan_dry_run(const ReproducePlan& plan, const ReproduceOptions& options);
// The table of runs and the totals, as `--dry-run` prints it.
std::string dry_run_text(const DryRun& dry);

}  // namespace pelab
