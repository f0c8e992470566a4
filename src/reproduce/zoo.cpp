#include "reproduce/zoo.h"

namespace pelab {

const std::vector<std::string>& zoo_pes() {
  static const std::vector<std::string> pes{"rope", "xpos", "prope", "kerple", "fire", "cope"};
  return pes;
}

std::string sweep_experiment(const SweepSpec& spec) {
  const auto dash = spec.name.rfind('-');
  return dash == std::string::npos ? spec.name : spec.name.substr(dash + 1);
}

SweepSpec zoo_sweep(const SweepSpec& study_sweep) {
  SweepSpec s = study_sweep;
  const auto dash = s.name.rfind('-');
  s.name = (dash == std::string::npos ? s.name : s.name.substr(0, dash)) + "-zoo";
  s.out_dir = study_sweep.out_dir.parent_path() / "zoo";
  // Keep the study sweep's seed axis (its last entry, added by reproduce's sweep()).
  std::pair<std::string, std::vector<std::string>> seeds{"train.seed", {"0"}};
  for (const auto& axis : study_sweep.grid)
    if (axis.first == "train.seed") seeds = axis;
  s.grid = {{"model.pe", zoo_pes()}, {"task.name", {"distance", "count"}}, seeds};
  return s;
}

}  // namespace pelab
