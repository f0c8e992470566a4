// The length and probes experiments (length_experiment.h).
#include "reproduce/length_experiment.h"

#include <fmt/format.h>

#include <chrono>

#include "analysis/length_generalization.h"
#include "pe/pe.h"
#include "train/trainer.h"

namespace pelab {

std::vector<std::string> length_experiment_pes() { return pe_names(); }

std::vector<std::string> probe_experiment_pes() {
  return {"nope", "sinusoidal", "learned", "relative", "alibi", "rope", "rope_abs", "mla"};
}

std::vector<std::string> probe_tasks() { return {"recall", "first", "order", "offset"}; }

bool is_length_sweep(const SweepSpec& spec) {
  const auto ends_with = [&](const std::string& tail) {
    return spec.name.size() >= tail.size() &&
           spec.name.compare(spec.name.size() - tail.size(), tail.size(), tail) == 0;
  };
  return ends_with("-length") || ends_with("-probes");
}

int64_t analyse_run_lengths(const RunRecord& run, const ReproducePlan& plan, Store& store,
                            bool progress) {
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
