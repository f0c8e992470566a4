// The PE zoo experiment of `pelab reproduce` (plan key experiments = ["zoo"], the shipped plan
// configs/reproduce/zoo.toml): the encodings proposed since the study (xpos, prope, kerple, fire,
// cope) beside rope, on both tasks, over the plan's seeds. Its runs get the same analyses as the
// study's (head ablation, kernel and trained spectra); the report shows them in its own section
// (report/zoo_section.h).
#pragma once

#include <string>
#include <vector>

#include "sweep/sweep_spec.h"

namespace pelab {

// rope first (the reference), then the zoo in docs/PE.md order.
const std::vector<std::string>& zoo_pes();

// The experiment of a reproduce sweep: the last part of its name "<scale>-<setup>-<experiment>".
std::string sweep_experiment(const SweepSpec& spec);

// The zoo sweep of the same plan and setup as `study_sweep` (any sweep reproduce_sweeps built):
// its base config, fixed overrides, seeds and store, the grid model.pe x task.name.
SweepSpec zoo_sweep(const SweepSpec& study_sweep);

}  // namespace pelab
