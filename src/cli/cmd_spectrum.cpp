#include <fmt/format.h>

#include "analysis/spectrum_study.h"
#include "cli/commands.h"
#include "cli/run_inputs.h"
#include "train/trainer.h"

namespace pelab::cli {

void add_spectrum(CLI::App& app) {
  struct Args {
    std::string pe, config_file, run_dir, split = "test", figure;
    std::vector<std::string> overrides;
    int64_t positions = 64, draws = 5, samples = 4;
    uint64_t seed = 0;
    bool json = false;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = app.add_subcommand(
      "spectrum",
      "Eigenvalues of a PE's positional kernels, Schur/Weyl checks, trained logit spectra");
  cmd->add_option("--pe", args->pe, "positional encoding (pelab pe list); not with --run");
  cmd->add_option("--config", args->config_file, "config file the PE options come from")
      ->check(CLI::ExistingFile);
  cmd->add_option("--run", args->run_dir,
                  "trained run: its (learned) kernels, its content Gram matrices and logits")
      ->check(CLI::ExistingDirectory);
  cmd->add_option("--n", args->positions, "number of positions n (default 64)")
      ->check(CLI::Range(int64_t{2}, int64_t{4096}));
  cmd->add_option("--draws", args->draws, "random PSD Gram matrices (default 5)")
      ->check(CLI::Range(int64_t{0}, int64_t{1000}));
  cmd->add_option("--seed", args->seed, "seed of the random Gram matrices (default 0)");
  cmd->add_option("--samples", args->samples, "sequences taken from the run (default 4)")
      ->check(CLI::Range(int64_t{1}, int64_t{100000}));
  cmd->add_option("--split", args->split, "split the run's sequences come from")
      ->check(CLI::IsMember({"test", "train", "all"}));
  cmd->add_flag("--json", args->json, "print the result as JSON");
  cmd->add_option("--figure", args->figure,
                  "figure stem: writes STEM-kernels.svg and STEM-coupling.svg (default "
                  "spectrum-PE-nN, or RUN/spectrum-nN with --run; 'none' for none)");
  cmd->add_option("overrides", args->overrides,
                  "config overrides key=value, e.g. model.n_heads=16");
  cmd->callback([args] {
    if (args->run_dir.empty() && args->pe.empty())
      throw ConfigError("spectrum: give --pe NAME (pelab pe list) or --run RUN");
    if (!args->run_dir.empty() &&
        (!args->pe.empty() || !args->config_file.empty() || !args->overrides.empty()))
      throw ConfigError(
          "spectrum: --run takes the PE and its options from the run; drop --pe, "
          "--config and overrides");
    SpectrumRequest request;
    request.positions = args->positions;
    request.draws = args->draws;
    request.seed = args->seed;
    request.samples = args->samples;
    SpectrumStudy study;
    std::string stem = args->figure;
    if (!args->run_dir.empty()) {
      auto [state, data] = load_run_with_split(args->run_dir, args->split);
      if (args->positions > state.config.task.seq_len)
        throw ConfigError(fmt::format("--n {} exceeds the run's task.seq_len {}", args->positions,
                                      state.config.task.seq_len));
      request.model = &state.model;
      request.data = &data;
      study = run_spectrum_study(*state.model->pe, state.config.model, request);
      if (stem.empty())
        stem = (std::filesystem::path(args->run_dir) / fmt::format("spectrum-n{}", args->positions))
                   .string();
    } else {
      auto overrides = args->overrides;
      overrides.push_back("model.pe=" + args->pe);
      const Config config = load_config(args->config_file, overrides);
      const auto pe =
          make_pe(PeOptions{config.model, std::max(args->positions, config.task.seq_len)});
      study = run_spectrum_study(*pe, config.model, request);
      if (stem.empty()) stem = fmt::format("spectrum-{}-n{}", args->pe, args->positions);
    }
    std::vector<std::filesystem::path> figures;
    if (stem != "none") figures = write_spectrum_figures(study, stem);
    if (args->json) {
      fmt::print("{}\n", spectrum_to_json(study).dump(2));
      return;
    }
    fmt::print("{}: {} kernels for n = {}\n", study.pe, study.kernels.size(), study.positions);
    for (const auto& info : pe_list())
      if (info.name == study.pe && info.kind == PeKind::kContextual)
        fmt::print(
            "  no fixed kernel: {}'s bias depends on the content (positions are counted by "
            "sigmoid(q.k) gates), so neither a Schur nor a Weyl check applies\n",
            study.pe);
    for (const auto& k : study.kernels) {
      if (k.name == "E" && k.index > 1) continue;  // every E^(t) has the same spectrum {n, 0..}
      fmt::print(
          "  {:<4} layer {} #{:<3} lambda [{:.4g}, {:.4g}]  cond {}  diag [{:.3g}, {:.3g}]{}\n",
          k.name, k.layer, k.index, k.eigenvalues[0].item<double>(),
          k.eigenvalues[-1].item<double>(),
          k.condition_number ? fmt::format("{:.4g}", *k.condition_number) : "inf", k.min_diagonal,
          k.max_diagonal, k.symmetric ? "" : "  (not symmetric)");
    }
    int64_t holding = 0, contracting = 0, with_ratio = 0;
    for (const auto& c : study.checks) {
      holding += c.bound_holds;
      if (c.contraction_ratio) {
        ++with_ratio;
        contracting += *c.contraction_ratio < 1;
      }
    }
    if (!study.checks.empty())
      fmt::print("{} checks: bounds hold in {}/{}; condition number shrinks in {}/{}\n",
                 study.checks.front().kind, holding, study.checks.size(), contracting, with_ratio);
    for (const auto& s : study.logit_spectra)
      fmt::print(
          "  logits layer {} head {}: log10 cond {:.2f} (within the q.k rank {:.2f}), effective "
          "rank {:.1f}\n",
          s.layer, s.head, s.mean_log10_condition, s.mean_log10_condition_within_rank,
          s.mean_effective_rank);
    for (const auto& f : figures) fmt::print("figure: {}\n", f.string());
  });
}

}  // namespace pelab::cli
