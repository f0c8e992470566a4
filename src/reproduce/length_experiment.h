// The `length` and `probes` experiments of `pelab reproduce` (plan key experiments = ["length"]
// or ["probes"]; configs/reproduce/length.toml, probes.toml).
//
//   length: every registered PE on plan.tasks (default distance and count), each seed, trained at
//   the plan's scale; then each run evaluated at
//           plan.length_factors x task.seq_len (position tables clamped: see
//           analysis/length_generalization.h) besides the study's head ablation.
//   probes: the six main PEs + rope_abs + MLA on the four probe tasks, with the same analyses.
// Sweep names are "<scale>-<setup>-length" and "<scale>-<setup>-probes". Results are stored as
// kind length_generalization, key "test clamp" (or "test" when no table needed clamping).
#pragma once

#include <vector>

#include "reproduce/reproduce.h"

namespace pelab {

// The PEs of the length experiment: every registered PE (the study's and the zoo's).
std::vector<std::string> length_experiment_pes();
// The probes experiment: the six main PEs + rope_abs + MLA on the four probe tasks.
std::vector<std::string> probe_experiment_pes();
std::vector<std::string> probe_tasks();

// Whether a reproduce sweep is the length or the probes experiment (name "<scale>-<setup>-X").
bool is_length_sweep(const SweepSpec& spec);

// The length evaluation of one finished run of those sweeps, when the store does not hold it yet;
// returns how many results it stored (0 or 1).
int64_t analyse_run_lengths(const RunRecord& run, const ReproducePlan& plan, Store& store,
                            bool progress);

}  // namespace pelab
