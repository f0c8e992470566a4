#include "reproduce/dry_run.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "sweep/sweep_runner.h"

namespace pelab {

namespace {

constexpr double kEvalSpeedup = 3.0;  // forward-only evaluation vs a training step, per sample

int64_t rows_per_epoch(const Config& c) {
  const int64_t n_train =
      static_cast<int64_t>(std::llround(c.task.train_fraction * double(c.task.samples)));
  return n_train -
         static_cast<int64_t>(std::llround(c.train.validation_fraction * double(n_train)));
}

}  // namespace

int64_t DryRun::ceiling_samples() const {
  int64_t n = 0;
  for (const auto& r : runs) n += r.samples_per_epoch * r.ceiling_epochs;
  return n;
}

int64_t DryRun::expected_samples() const {
  int64_t n = 0;
  for (const auto& r : runs) n += r.samples_per_epoch * r.expected_epochs;
  return n;
}

int64_t DryRun::analysis_samples() const {
  int64_t n = 0;
  for (const auto& r : runs) n += r.analysis_samples;
  return n;
}

double DryRun::hours(int64_t train_samples, int64_t analysis) const {
  if (train_samples_per_s <= 0) return std::numeric_limits<double>::quiet_NaN();
  const double train_s = double(train_samples) / (train_samples_per_s * double(workers));
  const double analysis_s = double(analysis) / (kEvalSpeedup * train_samples_per_s);
  return (train_s + analysis_s) / 3600.0;
}

DryRun plan_dry_run(const ReproducePlan& plan, const ReproduceOptions& options) {
  DryRun dry;
  dry.scale = plan.scale;
  dry.workers = options.workers > 0 ? options.workers : plan.workers;
  dry.train_samples_per_s = plan.train_samples_per_s;
  for (const auto& setup : options.setups)
    for (const auto& spec : reproduce_sweeps(plan, setup, options))
      for (const auto& run : expand_sweep(spec, threads_per_worker(dry.workers))) {
        const Config& c = run.config;
        DryRunEntry p;
        p.sweep = spec.name;
        p.run = run.name;
        p.samples_per_epoch = rows_per_epoch(c);
        p.ceiling_epochs = c.train.epochs;
        p.expected_epochs = plan.expected_epochs > 0
                                ? std::min(plan.expected_epochs, c.train.epochs)
                                : c.train.epochs;
        const int64_t n_test =
            c.task.samples -
            static_cast<int64_t>(std::llround(c.task.train_fraction * double(c.task.samples)));
        const int64_t split = setup_ablation_split(setup) == "all" ? c.task.samples : n_test;
        const int64_t analysed =
            plan.analysis_samples > 0 ? std::min(plan.analysis_samples, split) : split;
        // In forward-pass equivalents: ablating a head of layer l re-runs layers l..L-1 (the
        // prefix is shared), so the H x L branches cost H x (L + 1) / 2 forwards, plus the
        // baseline; removal runs (1 + draws) variants from each layer on: (1 + draws)(L + 1)/2.
        const int64_t L = c.model.n_layers, H = c.model.n_heads;
        p.analysis_samples = analysed + analysed * H * (L + 1) / 2;
        if (is_absolute_pe(c.model.pe))
          p.analysis_samples += analysed * (1 + plan.removal_draws) * (L + 1) / 2;
        dry.runs.push_back(p);
      }
  return dry;
}

std::string dry_run_text(const DryRun& dry) {
  std::string out =
      fmt::format("scale {}: {} runs, {} worker(s)\n", dry.scale, dry.runs.size(), dry.workers);
  out += fmt::format("{:<34} {:<34} {:>9} {:>7} {:>8} {:>12}\n", "sweep", "run", "rows/ep",
                     "ceiling", "expected", "est. samples");
  for (const auto& r : dry.runs)
    out +=
        fmt::format("{:<34} {:<34} {:>9} {:>7} {:>8} {:>12}\n", r.sweep, r.run, r.samples_per_epoch,
                    r.ceiling_epochs, r.expected_epochs, r.samples_per_epoch * r.expected_epochs);
  out += fmt::format(
      "training samples: {} expected, {} at the ceiling; analysis forward samples: {}\n",
      dry.expected_samples(), dry.ceiling_samples(), dry.analysis_samples());
  if (dry.train_samples_per_s > 0)
    out += fmt::format(
        "estimated time on this machine at {:.0f} training samples/s per worker: {:.2f} h "
        "expected, {:.2f} h at the ceiling\n",
        dry.train_samples_per_s, dry.hours(dry.expected_samples(), dry.analysis_samples()),
        dry.hours(dry.ceiling_samples(), dry.analysis_samples()));
  else
    out += "no estimated time: the plan gives no measured train_samples_per_s\n";
  return out;
}

}  // namespace pelab
