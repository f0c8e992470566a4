#include "reproduce/reproduce.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <nlohmann/json.hpp>

#include "analysis/ablation.h"
#include "analysis/analysis_progress.h"
#include "analysis/removal.h"
#include "analysis/spectrum_study.h"
#include "reproduce/length_experiment.h"
#include "reproduce/zoo.h"
#include "sweep/sweep_runner.h"
#include "train/early_stopping.h"
#include "train/trainer.h"

namespace pelab {
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

std::vector<std::string> as_text(const std::vector<int64_t>& values) {
  std::vector<std::string> out;
  for (auto v : values) out.push_back(std::to_string(v));
  return out;
}

SweepSpec sweep(const ReproducePlan& plan, const std::string& setup,
                const ReproduceOptions& options, const std::string& experiment,
                std::vector<std::pair<std::string, std::vector<std::string>>> grid) {
  SweepSpec s;
  s.name = fmt::format("{}-{}-{}", plan.scale, setup, experiment);
  s.setup = setup;
  s.base_config = plan.base_config;
  s.fixed_overrides = plan.fixed_overrides;
  for (const auto& o : setup_overrides(setup)) s.fixed_overrides.push_back(o);
  grid.push_back({"train.seed", as_text(plan.seeds)});
  for (const auto& [task, seeds] : plan.task_seeds)
    for (auto seed : plan.seeds)
      if (std::find(seeds.begin(), seeds.end(), seed) == seeds.end())
        s.skip.push_back({"task.name=" + task, fmt::format("train.seed={}", seed)});
  s.grid = std::move(grid);
  s.out_dir = options.out_dir / setup / experiment;
  s.store_path = options.store_path;
  s.source = plan.file.string();
  return s;
}

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

}  // namespace

std::vector<SweepSpec> reproduce_sweeps(const ReproducePlan& plan, const std::string& setup,
                                        const ReproduceOptions& options) {
  const Config base = load_config(plan.base_config, plan.fixed_overrides);
  std::vector<std::string> partial;  // k < n_heads; k = all heads is the main rope run
  for (auto k : plan.rotary_heads)
    if (k >= 0 && k < base.model.n_heads) partial.push_back(std::to_string(k));
  std::vector<SweepSpec> out;
  if (plan.includes("main"))
    out.push_back(
        sweep(plan, setup, options, "main", {{"model.pe", plan.pes}, {"task.name", plan.tasks}}));
  if (plan.includes("rope_abs"))
    out.push_back(sweep(plan, setup, options, "rope_abs",
                        {{"model.pe", {"rope_abs"}}, {"task.name", plan.tasks}}));
  if (plan.includes("k_heads") && !partial.empty())
    out.push_back(sweep(
        plan, setup, options, "k_heads",
        {{"model.pe", {"rope"}}, {"model.rotary_heads", partial}, {"task.name", {"distance"}}}));
  if (plan.includes("mla"))
    out.push_back(
        sweep(plan, setup, options, "mla", {{"model.pe", {"mla"}}, {"task.name", plan.tasks}}));
  if (plan.includes("zoo"))
    out.push_back(
        sweep(plan, setup, options, "zoo", {{"model.pe", zoo_pes()}, {"task.name", plan.tasks}}));
  if (plan.includes("length"))
    out.push_back(sweep(plan, setup, options, "length",
                        {{"model.pe", length_experiment_pes()}, {"task.name", plan.tasks}}));
  if (plan.includes("probes"))
    out.push_back(sweep(plan, setup, options, "probes",
                        {{"model.pe", probe_experiment_pes()}, {"task.name", probe_tasks()}}));
  return out;
}

int64_t analyse_run(const RunRecord& run, const ReproducePlan& plan, Store& store, bool first_seed,
                    bool kernel_spectrum, bool progress) {
  const std::string split = setup_ablation_split(run.setup);
  bool need_ablation = true, need_removal = is_absolute_pe(run.pe);
  bool need_run_spectrum = first_seed && run.task == "distance" && run.pe != "nope";
  bool need_kernel = kernel_spectrum && first_seed && run.task == "distance" && run.pe != "nope";
  for (const auto& a : store.ablations(run.id))
    if (a.method == "value" && a.split == split) need_ablation = false;
  const std::string kernel_key = run.setup + "/" + run.pe;
  for (const auto& r : store.results("", run.id)) {
    if (r.kind == "removal" && r.key == split) need_removal = false;
    if (r.kind == "run_spectrum") need_run_spectrum = false;
  }
  if (need_kernel)
    for (const auto& r : store.results("kernel_spectrum"))
      if (r.key == kernel_key) need_kernel = false;
  if (!need_ablation && !need_removal && !need_run_spectrum && !need_kernel) return 0;

  TrainState state = load_checkpoint(reported_checkpoint_path(run.run_dir));
  configure_threads(0);
  Dataset data = select_split(make_split(state.config.task), split);
  if (plan.analysis_samples > 0 && data.size() > plan.analysis_samples)
    data = data.index(torch::arange(plan.analysis_samples, torch::kLong));
  const int64_t batch = eval_batch_size(state.config);
  int64_t done = 0;
  const auto start = Clock::now();
  if (need_ablation) {
    AnalysisProgress bar("  ablate " + run.name, data.size(), progress);
    const auto r = ablate_heads(state.model, data, AblationMethod::kValue, batch, bar.callback());
    const auto j = ablation_to_json(r, split);
    AblationRecord a;
    a.run_id = run.id;
    a.method = "value";
    a.split = split;
    a.baseline_accuracy = r.baseline_accuracy;
    a.samples = r.samples;
    a.accuracy = j.at("accuracy").get<std::vector<std::vector<double>>>();
    a.extra = j.at("deposits");
    store.put_ablation(a);
    ++done;
  }
  if (need_removal) {
    AnalysisProgress bar("  removal " + run.name, data.size(), progress);
    const auto r = remove_positional_component(state.model, data, plan.removal_draws, 0, batch,
                                               bar.callback());
    store.put_result({0, run.id, "removal", split, removal_to_json(r, split), ""});
    ++done;
  }
  const int64_t positions = std::min(plan.spectrum_positions, state.config.task.seq_len);
  if (need_run_spectrum) {
    SpectrumRequest request;
    request.positions = positions;
    request.draws = 0;
    request.model = &state.model;
    request.data = &data;
    request.samples = 4;
    const auto study = run_spectrum_study(*state.model->pe, state.config.model, request);
    store.put_result({0, run.id, "run_spectrum", "test", spectrum_to_json(study), ""});
    ++done;
  }
  if (need_kernel) {
    SpectrumRequest request;
    request.positions = positions;
    request.draws = 5;
    const auto study = run_spectrum_study(*state.model->pe, state.config.model, request);
    store.put_result({0, std::nullopt, "kernel_spectrum", kernel_key, spectrum_to_json(study), ""});
    ++done;
  }
  if (progress)
    fmt::print(stderr, "  analysed {} ({} result{}, {:.1f} s)\n", run.name, done,
               done == 1 ? "" : "s", seconds_since(start));
  return done;
}

ReproduceSummary run_reproduce(const ReproducePlan& plan, const ReproduceOptions& options,
                               Store& store) {
  ReproduceSummary summary;
  SweepOptions sweep_options;
  sweep_options.workers = options.workers > 0 ? options.workers : plan.workers;
  sweep_options.progress = options.progress;
  sweep_options.binary = options.binary;
  for (const auto& setup : options.setups) {
    for (const auto& spec : reproduce_sweeps(plan, setup, options)) {
      if (options.progress) fmt::print(stderr, "== sweep {} ==\n", spec.name);
      const auto runs = expand_sweep(spec, threads_per_worker(sweep_options.workers));
      const auto start = Clock::now();
      const auto s = run_sweep(spec, runs, store, sweep_options);
      summary.train_seconds += seconds_since(start);
      summary.runs += s.total;
      summary.failed += s.failed;
      if (s.interrupted) {
        summary.interrupted = true;
        return summary;
      }
    }
  }
  const auto start = Clock::now();
  for (const auto& setup : options.setups) {
    for (const auto& spec : reproduce_sweeps(plan, setup, options)) {
      RunFilter filter;
      filter.sweep = spec.name;
      filter.status = RunStatus::kFinished;
      const auto runs = store.list_runs(filter);
      if (options.progress && !runs.empty())
        fmt::print(stderr, "== analysis {} ({} runs) ==\n", spec.name, runs.size());
      // Spectra belong to the study; the length and probes experiments skip them and are
      // evaluated at longer lengths instead.
      const bool lengths = is_length_sweep(spec);
      const bool kernels = !lengths && spec.name.find("-k_heads") == std::string::npos;
      for (const auto& run : runs)
        summary.analyses +=
            analyse_run(run, plan, store, !lengths && run.seed == plan.seeds.front(), kernels,
                        options.progress) +
            (lengths ? analyse_run_lengths(run, plan, store, options.progress) : 0);
    }
  }
  summary.analysis_seconds = seconds_since(start);
  return summary;
}

}  // namespace pelab
