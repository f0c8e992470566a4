// What `pelab reproduce` runs at a scale: read from configs/reproduce/<scale>.toml.
//
//   base = "../small.toml"        # training config for every run, relative to this file
//   seeds = [0, 1]                # seeds per cell
//   rotary_heads = [0, 1, 2, 3]   # the k-heads curve (RoPE on the first k heads; all heads is
//                                 # the main rope run)
//   analysis_samples = 1500       # sequences head ablation and removal evaluate (0 = the split)
//   spectrum_positions = 64       # n of the kernel spectra
//   removal_draws = 5             # random vectors per layer in positional-component removal
//   workers = 2                   # training processes
//   [set]                         # overrides for every run, any config key
//   "train.epochs" = 6
//   experiment = "length"         # study (default) | length | probes: which runs and analyses
//   pes = ["nope", "rope"]        # length/probes: the PEs (length default: every registered PE)
//   tasks = ["recall", "first"]   # length/probes: the tasks (default distance, count / probes)
//   length_factors = [1, 2, 4]    # length/probes: evaluation lengths x task.seq_len
//   (src/reproduce/length_experiment.h)
//
// The two setups (PAPER.md section 5) add their own overrides on top; see setup_overrides().
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace pelab {

struct ReproducePlan {
  std::string scale;
  std::filesystem::path file, base_config;
  std::vector<std::string> fixed_overrides;
  std::vector<int64_t> seeds{0};
  std::vector<int64_t> rotary_heads{0, 1, 2};
  int64_t analysis_samples = 0;
  int64_t spectrum_positions = 64;
  int64_t removal_draws = 5;
  int64_t workers = 1;
  std::string experiment = "study";
  std::vector<std::string> pes, tasks;  // length/probes; empty = the experiment's default
  std::vector<double> length_factors{1, 1.5, 2, 3, 4};
};

// The scales shipped in configs/reproduce/ (tiny, small, paper) or any path to a plan file.
// Throws ConfigError naming the file, the key and what is accepted.
ReproducePlan load_plan(const std::string& scale_or_file, const std::filesystem::path& source_dir);

inline const std::vector<std::string>& setup_names() {
  static const std::vector<std::string> names{"faithful", "standard"};
  return names;
}
// faithful: the authors' quirks (no mask, keys/values from the embeddings, paper ALiBi slopes,
// pooling over pads, fillers may be triggers); standard: padding mask, residual keys/values,
// standard slopes, pooling over valid tokens, fillers never triggers.
std::vector<std::string> setup_overrides(const std::string& setup);
// The split head ablation is scored on: the authors used train and test together.
std::string setup_ablation_split(const std::string& setup);

}  // namespace pelab
