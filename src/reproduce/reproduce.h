// `pelab reproduce`: the study end to end at one scale. For each setup it trains four sweeps into
// the store (main: six PEs x two tasks; rope_abs; k_heads: RoPE on the first k heads; mla), then
// analyses every finished run (head ablation; positional-component removal for absolute PEs;
// kernel and trained-logit spectra for the first seed's distance runs), storing each result.
// Everything is resumable: finished runs and stored analyses are skipped on a re-run.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "reproduce/plan.h"
#include "store/store.h"
#include "sweep/sweep_spec.h"

namespace pelab {

struct ReproduceOptions {
  std::vector<std::string> setups;  // faithful, standard
  std::filesystem::path out_dir;    // run folders: out_dir/<setup>/<experiment>/<run>
  std::filesystem::path store_path;
  int64_t workers = 0;  // 0 = the plan's
  bool progress = true;
  std::filesystem::path binary;  // pelab executable for the workers; "" = this process
};

// Sweep names are "<scale>-<setup>-<experiment>" (the report groups by them).
std::vector<SweepSpec> reproduce_sweeps(const ReproducePlan& plan, const std::string& setup,
                                        const ReproduceOptions& options);

struct ReproduceSummary {
  int64_t runs = 0, failed = 0, analyses = 0;
  double train_seconds = 0, analysis_seconds = 0;
  bool interrupted = false;
};

ReproduceSummary run_reproduce(const ReproducePlan& plan, const ReproduceOptions& options,
                               Store& store);

// The analyses of one finished run that the store does not hold yet; returns how many ran.
int64_t analyse_run(const RunRecord& run, const ReproducePlan& plan, Store& store, bool first_seed,
                    bool kernel_spectrum, bool progress);

}  // namespace pelab
