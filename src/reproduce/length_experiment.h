// The `length` and `probes` experiments of `pelab reproduce` (plan key experiment = "length" |
// "probes"; configs/reproduce/length.toml, probes.toml).
//
//   length: every PE of plan.pes (default: every registered PE) on plan.tasks (default distance
//           and count), each seed, trained at the plan's scale; then each run evaluated at
//           plan.length_factors x task.seq_len (position tables clamped: see
//           analysis/length_generalization.h) besides the study's head ablation.
//   probes: the six main PEs + rope_abs + MLA (or plan.pes) on the four probe tasks (or
//           plan.tasks), with the same analyses.
// Sweep names are "<scale>-<setup>-length" and "<scale>-<setup>-probes". Results are stored as
// kind length_generalization, key "test clamp" (or "test" when no table needed clamping).
#pragma once

#include <vector>

#include "reproduce/reproduce.h"

namespace pelab {

// The PEs and tasks the plan's experiment trains (its lists or the experiment's defaults).
std::vector<std::string> experiment_pes(const ReproducePlan& plan);
std::vector<std::string> experiment_tasks(const ReproducePlan& plan);

std::vector<SweepSpec> experiment_sweeps(const ReproducePlan& plan, const std::string& setup,
                                         const ReproduceOptions& options);

// The length evaluation of one finished run when the plan asks for it and the store does not
// hold it yet; returns how many results it stored (0 or 1).
int64_t analyse_run_lengths(const RunRecord& run, const ReproducePlan& plan, Store& store,
                            bool progress);

}  // namespace pelab
