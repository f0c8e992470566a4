// The length and probes experiments (length_experiment.h).
#include "reproduce/length_experiment.h"

#include <fmt/format.h>

#include <chrono>

#include "analysis/length_generalization.h"
#include "pe/pe.h"
#include "train/trainer.h"

namespace pelab {

std::vector<std::string> experiment_pes(const ReproducePlan& plan) {
  if (!plan.pes.empty()) return plan.pes;
  if (plan.experiment == "length") return pe_names();
  return {"nope", "sinusoidal", "learned", "relative", "alibi", "rope", "rope_abs", "mla"};
}

std::vector<std::string> experiment_tasks(const ReproducePlan& plan) {
  if (!plan.tasks.empty()) return plan.tasks;
  if (plan.experiment == "length") return {"distance", "count"};
  return {"recall", "first", "order", "offset"};
}

std::vector<SweepSpec> experiment_sweeps(const ReproducePlan& plan, const std::string& setup,
                                         const ReproduceOptions& options) {
  SweepSpec s;
  s.name = fmt::format("{}-{}-{}", plan.scale, setup, plan.experiment);
  s.setup = setup;
  s.base_config = plan.base_config;
  s.fixed_overrides = plan.fixed_overrides;
  for (const auto& o : setup_overrides(setup)) s.fixed_overrides.push_back(o);
  std::vector<std::string> seeds;
  for (const auto seed : plan.seeds) seeds.push_back(std::to_string(seed));
  s.grid = {{"model.pe", experiment_pes(plan)},
            {"task.name", experiment_tasks(plan)},
            {"train.seed", seeds}};
  s.out_dir = options.out_dir / setup / plan.experiment;
  s.store_path = options.store_path;
  s.source = plan.file.string();
  return {s};
}

int64_t analyse_run_lengths(const RunRecord& run, const ReproducePlan& plan, Store& store,
                            bool progress) {
  if (plan.experiment == "study") return 0;
  if (!store.results("length_generalization", run.id).empty()) return 0;
  const auto start = std::chrono::steady_clock::now();
  TrainState state = load_checkpoint(checkpoint_path(run.run_dir));
  configure_threads(0);
  LengthOptions options;
  options.lengths = lengths_for_factors(plan.length_factors, state.config.task.seq_len);
  options.clamp_positions = true;
  options.max_samples = plan.analysis_samples;
  const LengthResult r = evaluate_lengths(state, options);
  store.put_result(
      {0, run.id, "length_generalization", length_result_key(r, {}), length_result_to_json(r), ""});
  if (progress) {
    std::string accuracies;
    for (const auto& p : r.points) accuracies += fmt::format(" {}:{:.3f}", p.length, p.accuracy);
    fmt::print(stderr, "  lengths {}:{} ({:.1f} s)\n", run.name, accuracies,
               std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  return 1;
}

}  // namespace pelab
