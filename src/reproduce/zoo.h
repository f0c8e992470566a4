// The PE zoo experiment of `pelab reproduce` (plan key experiments = ["zoo"], the shipped plan
// configs/reproduce/zoo.toml): the encodings proposed since the study (xpos, prope, kerple, fire,
// cope) beside rope, on both tasks, over the plan's seeds. Its runs get the same analyses as the
// study's (head ablation, kernel and trained spectra); the report shows them in its own section
// (report/zoo_section.h).
#pragma once

#include <string>
#include <vector>

namespace pelab {

// rope first (the reference), then the zoo in docs/PE.md order.
const std::vector<std::string>& zoo_pes();

}  // namespace pelab
