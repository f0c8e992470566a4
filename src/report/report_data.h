// Everything `pelab report` shows, loaded from the experiment store into plain structs, so the
// verdict rules (claims.h) and the page (html.h) never touch SQLite and tests can build a
// ReportData by hand.
//
// Runs are grouped by what they are, read from each run's resolved configuration (setup, PE,
// task, rotary heads), not by sweep names: a cell is one configuration over its seeds. A seed of
// a cell counts once (the k-heads sweep's "all heads" runs repeat the main RoPE runs).
#pragma once

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "analysis/ablation.h"
#include "store/store.h"

namespace pelab {

// The six PEs of the main comparison, in the paper's order, and the study's two tasks.
inline const std::vector<std::string> kMainPes = {"nope",     "sinusoidal", "learned",
                                                  "relative", "alibi",      "rope"};
inline constexpr const char* kTask1 = "distance";
inline constexpr const char* kTask2 = "count";

// Mean and spread of one number over seeds; n = 0 means not measured.
struct SeedStats {
  int64_t n = 0;
  double mean = std::numeric_limits<double>::quiet_NaN();
  double std = 0;  // sample standard deviation (n - 1); 0 for one seed
  double min = std::numeric_limits<double>::quiet_NaN();
  double max = std::numeric_limits<double>::quiet_NaN();
  bool measured() const { return n > 0; }
  static SeedStats of(const std::vector<double>& values);
};

// One head-ablation matrix of one run (the first `value` ablation the store holds for it).
struct HeadAblation {
  int64_t run_id = 0, seed = 0;
  std::string method, split;
  double baseline_accuracy = 0;
  std::vector<std::vector<double>> accuracy;  // [layers][heads]
  std::vector<LayerDeposit> deposits;         // per layer, as ablation_to_json writes them
};

struct RemovalLayer {
  int64_t layer = 0;
  double accuracy_without_position = 0;
  std::vector<double> accuracy_without_random;  // one per random direction
  double random_mean = 0, random_std = 0;
};

// Positional-component removal of one run (analysis/removal.h).
struct PositionRemoval {
  int64_t run_id = 0, seed = 0;
  std::string split;
  int64_t samples = 0;
  double baseline_accuracy = 0;
  std::vector<RemovalLayer> layers;
};

struct KernelEigenvalues {
  std::string name;  // B, T, E, G_pp
  int64_t layer = 0, index = 0;
  std::vector<double> eigenvalues;  // ascending
  std::optional<double> condition_number;
  double min_diagonal = 0, max_diagonal = 0;
};

struct CouplingSummary {
  std::string source, kind, kernel;  // kind: schur | weyl
  bool bound_holds = false;
  std::optional<double> condition_a, condition_coupled, contraction_ratio;
};

struct LogitSpectrum {
  int64_t layer = 0, head = 0;
  double mean_log10_condition = 0, mean_effective_rank = 0, mean_top_share = 0;
};

// A spectrum study: of a PE's kernels (run_id empty, results kind "kernel_spectrum") or of a
// trained run (kind "run_spectrum").
struct SpectrumData {
  std::string setup, pe;
  std::optional<int64_t> run_id;
  int64_t positions = 0;
  std::vector<KernelEigenvalues> kernels;
  std::vector<CouplingSummary> checks;
  std::vector<LogitSpectrum> logit_spectra;
};

// "Learns fastest": fewest training samples to reach this share of the PE's own final accuracy.
inline constexpr double kSpeedShare = 0.9;

// One configuration (setup, PE, task, rotary heads) over its seeds.
struct Cell {
  std::string setup, pe, task;
  int64_t rotary_heads = -1;  // -1: every head rotates, or the PE is not rotary
  int64_t n_heads = 0, n_layers = 0;
  int64_t label_count = 0;  // distinct labels the task can take: chance is 1 / label_count
  std::vector<int64_t> run_ids, seeds;  // finished runs, by seed
  int64_t unfinished_runs = 0;          // queued, running or failed
  SeedStats final_accuracy;             // final test accuracy
  SeedStats curve_accuracy;             // mean test accuracy over the epochs (area under curve)
  // Training samples until the test accuracy first reaches kSpeedShare x the run's own final
  // accuracy (epochs x samples per epoch): the rules' measure of "learns fastest".
  SeedStats samples_to_share;
  int64_t samples_per_epoch = 0;  // rows the optimiser sees per epoch (train split - validation)
  // Best accuracy from the sequence length alone (tasks/length_bayes.h); NaN for other tasks.
  double length_only_accuracy = std::numeric_limits<double>::quiet_NaN();
  // Per finished run, by seed: epochs trained and why training stopped ("plateau": converged by
  // the early-stopping rule; "ceiling": train.epochs reached, so not shown to be converged).
  std::vector<int64_t> epochs_trained;
  std::vector<std::string> stop_reasons;
  int64_t ceiling_runs() const {
    return std::count(stop_reasons.begin(), stop_reasons.end(), std::string("ceiling"));
  }
  std::vector<double> curve_mean, curve_std;  // test accuracy per epoch, over seeds
  std::vector<HeadAblation> ablations;        // by seed
  std::vector<PositionRemoval> removals;      // by seed
  double chance() const { return label_count > 0 ? 1.0 / double(label_count) : 0.0; }
};

struct SetupSummary {
  std::string setup;
  int64_t runs = 0, finished = 0, failed = 0, unfinished = 0;
  double train_seconds = 0;                           // sum over the setup's runs
  std::map<std::string, int64_t> runs_by_experiment;  // "main", "k_heads", ... (sweep names)
  std::string config_toml;  // a representative run's resolved configuration (main RoPE run)
};

struct ReportData {
  std::string scale;
  std::filesystem::path store_path;
  std::vector<std::string> setups;  // faithful, standard, then any other, as present
  std::vector<SetupSummary> setup_summaries;
  std::vector<Cell> cells;
  std::vector<SpectrumData> spectra;
  std::vector<std::string> warnings;  // records that could not be read, duplicates, ...

  const Cell* find(const std::string& setup, const std::string& pe, const std::string& task,
                   int64_t rotary_heads = -1) const;
  // The kernel study of `pe` in `setup`, or null.
  const SpectrumData* kernel_spectrum(const std::string& setup, const std::string& pe) const;
  // The studies of trained runs of `pe` in `setup`.
  std::vector<const SpectrumData*> run_spectra(const std::string& setup,
                                               const std::string& pe) const;
};

// Scales with runs in the store, from the sweep names "<scale>-<setup>-<experiment>".
std::vector<std::string> scales_in_store(const Store& store);

// Loads the runs of `scale` and every record attached to them. Throws StoreError when the store
// holds no run of that scale, naming the scales it does hold.
ReportData load_report_data(const Store& store, const std::string& scale);

}  // namespace pelab
