// What the report says about how far each run trained: its stop reason (early_stopping.h), the
// samples it took to reach a share of its final accuracy, and the task's length-only floor.
#pragma once

#include <string>
#include <vector>

#include "config/config.h"
#include "store/store.h"

namespace pelab {

struct RunConvergence {
  int64_t epochs = 0;
  std::string stop_reason;  // plateau | ceiling | "" (stopped early without a plateau: unknown)
};

// From the run folder's metrics.json when readable (it holds the validation numbers), else from
// the store's metrics (which do not: a run with all train.epochs is then "ceiling").
RunConvergence run_convergence(const RunRecord& run, const std::vector<EpochMetrics>& metrics,
                               const Config& config);
// Rows the optimiser sees per epoch: the train split less the validation set.
int64_t samples_per_epoch(const Config& config);
// length_only_bayes_accuracy, or NaN for a task it does not know.
double length_only_accuracy(const TaskConfig& task);
// The first epoch (1-based) whose value is >= target; 0 when none is.
int64_t first_epoch_reaching(const std::vector<double>& curve, double target);

}  // namespace pelab
