// What `pelab reproduce` runs at a scale: read from configs/reproduce/<scale>.toml.
//
//   extends = "small.toml"        # start from that plan (same folder); every key given here
//                                 # replaces the parent's, [set] and [task_seeds] add to them
//   base = "../small.toml"        # training config for every run, relative to this file
//   seeds = [0, 1]                # seeds per cell
//   rotary_heads = [0, 1, 2, 3]   # the k-heads curve (RoPE on the first k heads; all heads is
//                                 # the main rope run)
//   analysis_samples = 1500       # sequences head ablation and removal evaluate (0 = the split)
//   spectrum_positions = 64       # n of the kernel spectra
//   removal_draws = 5             # random vectors per layer in positional-component removal
//   workers = 2                   # training processes
//   experiments = ["main", "rope_abs", "k_heads", "mla"]   # which sweeps (default: the four
//                                 # of the study); also "zoo" (the PE zoo, reproduce/zoo.h),
//                                 # "length" and "probes" (reproduce/length_experiment.h)
//   pes = ["nope", "rope"]        # the main sweep's PEs (default: the six of the paper)
//   tasks = ["distance"]          # tasks of the main, rope_abs, mla and zoo sweeps (default: both)
//   train_samples_per_s = 90      # measured training speed of one worker at this shape, for
//                                 # `--dry-run` (reproduce/dry_run.h says how it is used)
//   expected_epochs = 12          # epochs a run is expected to stop after (early stopping);
//                                 # default train.epochs, the ceiling
//   length_factors = [1, 2, 4]    # length/probes: evaluation lengths x task.seq_len
//   [task_seeds]                  # tasks trained on a subset of the seeds
//   count = [0]
//   [set]                         # overrides for every run, any config key
//   "train.epochs" = 6
//
// The two setups (PAPER.md section 5) add their own overrides on top; see setup_overrides().
#pragma once

#include <algorithm>
#include <filesystem>
#include <map>
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
  std::vector<std::string> experiments{"main", "rope_abs", "k_heads", "mla"};
  std::vector<std::string> pes{"nope", "sinusoidal", "learned", "relative", "alibi", "rope"};
  std::vector<std::string> tasks{"distance", "count"};
  double train_samples_per_s = 0;  // 0 = not measured: the dry run gives no hours
  int64_t expected_epochs = 0;     // 0 = train.epochs
  std::vector<double> length_factors{1, 1.5, 2, 3, 4};
  // Tasks trained on a subset of `seeds` ([task_seeds] count = [0]); absent = every seed.
  std::map<std::string, std::vector<int64_t>> task_seeds;
  bool includes(const std::string& experiment) const {
    return std::find(experiments.begin(), experiments.end(), experiment) != experiments.end();
  }
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
// The PEs with an absolute position vector p_i, whose runs get the positional-component removal.
inline bool is_absolute_pe(const std::string& pe) {
  return pe == "sinusoidal" || pe == "learned" || pe == "rope_abs";
}
// The split head ablation is scored on: the authors used train and test together.
std::string setup_ablation_split(const std::string& setup);

}  // namespace pelab
