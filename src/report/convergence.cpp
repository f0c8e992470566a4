#include "report/convergence.h"

#include <cmath>
#include <fstream>
#include <limits>
#include <sstream>

#include "tasks/length_bayes.h"
#include "train/early_stopping.h"

namespace pelab {
namespace fs = std::filesystem;

RunConvergence run_convergence(const RunRecord& run, const std::vector<EpochMetrics>& metrics,
                               const Config& config) {
  std::vector<EpochMetrics> history = metrics;
  std::ifstream in(fs::path(run.run_dir) / "metrics.json");
  if (in) {
    std::stringstream text;
    text << in.rdbuf();
    try {
      auto folder = metrics_from_json(text.str());
      if (folder.size() == metrics.size()) history = std::move(folder);
    } catch (const std::exception&) {
      // An unreadable folder file: the store's metrics stand.
    }
  }
  RunConvergence c;
  c.epochs = static_cast<int64_t>(history.size());
  c.stop_reason = stopping_state(history, config.train).stop_reason;
  return c;
}

int64_t samples_per_epoch(const Config& config) {
  const auto& t = config.task;
  const int64_t n_train = static_cast<int64_t>(std::llround(t.train_fraction * double(t.samples)));
  const int64_t n_validation =
      static_cast<int64_t>(std::llround(config.train.validation_fraction * double(n_train)));
  return n_train - n_validation;
}

double length_only_accuracy(const TaskConfig& task) {
  try {
    return length_only_bayes_accuracy(task);
  } catch (const ConfigError&) {
    return std::numeric_limits<double>::quiet_NaN();
  }
}

int64_t first_epoch_reaching(const std::vector<double>& curve, double target) {
  for (size_t e = 0; e < curve.size(); ++e)
    if (curve[e] >= target) return static_cast<int64_t>(e) + 1;
  return 0;
}

}  // namespace pelab
