#include <fmt/format.h>

#include <chrono>

#include "analysis/ablation.h"
#include "analysis/analysis_progress.h"
#include "cli/commands.h"
#include "cli/run_inputs.h"
#include "report/heatmap.h"
#include "train/trainer.h"

namespace pelab::cli {

void add_ablate(CLI::App& app) {
  struct Args {
    std::string run_dir, split = "test", method = "value";
    bool json = false, no_progress = false;
    bool one_by_one = false;
    int64_t samples = 0;
    uint64_t seed = 0;
    std::string figure;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = app.add_subcommand(
      "ablate", "Accuracy with each attention head removed, and the per-layer deposit summary");
  cmd->add_option("run", args->run_dir, "run folder")->required()->check(CLI::ExistingDirectory);
  cmd->add_option("--split", args->split, "test | train | all")
      ->check(CLI::IsMember({"test", "train", "all"}));
  cmd->add_option("--method", args->method,
                  "value (zero the head's value rows; authors') | output | mean");
  cmd->add_flag("--json", args->json, "print the result as JSON");
  cmd->add_option("--samples", args->samples,
                  "analyse a seeded subset of N sequences of the split (default: all)")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 40));
  cmd->add_option("--seed", args->seed, "seed of the --samples subset (default 0)");
  cmd->add_flag("--no-progress", args->no_progress, "no progress line on stderr");
  cmd->add_option("--figure", args->figure,
                  "heatmap SVG to write (default RUN/ablation-METHOD-SPLIT.svg; 'none' for none)");
  cmd->add_flag("--one-by-one", args->one_by_one,
                "use the plain loop (one full evaluation per head): the reference, slower");
  cmd->callback([args] {
    const AblationMethod method = parse_ablation_method(args->method);
    auto [state, all] = load_run_with_split(args->run_dir, args->split);
    const Dataset data = seeded_subset(all, args->samples, args->seed);
    const int64_t batch = eval_batch_size(state.config);
    const auto start = std::chrono::steady_clock::now();
    AnalysisProgress progress("ablate", data.size(), !args->no_progress && !args->one_by_one);
    const AblationResult r =
        args->one_by_one ? ablate_heads_one_by_one(state.model, data, method, batch)
                         : ablate_heads(state.model, data, method, batch, progress.callback());
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (const auto figure =
            figure_path(args->figure, args->run_dir,
                        fmt::format("ablation-{}-{}.svg", args->method, args->split))) {
      write_heatmap_svg(*figure, r.accuracy,
                        {fmt::format("Accuracy with one head removed ({} ablation, {} split; "
                                     "baseline {:.3f})",
                                     args->method, args->split, r.baseline_accuracy),
                         "head", "layer", "accuracy"});
      if (!args->json) fmt::print("heatmap: {}\n", figure->string());
    }
    if (args->json) {
      fmt::print("{}\n", ablation_to_json(r, args->split).dump());
      return;
    }
    fmt::print("{} ablation on the {} split ({} samples, {:.1f} s): baseline accuracy {:.4f}\n",
               args->method, args->split, r.samples, seconds, r.baseline_accuracy);
    for (int64_t l = 0; l < r.accuracy.size(0); ++l) {
      std::string row;
      for (int64_t h = 0; h < r.accuracy.size(1); ++h)
        row += fmt::format(" {:.3f}", r.accuracy[l][h].item<double>());
      const auto& d = r.deposits[l];
      fmt::print("layer {}:{}  | worst head {} drop {:.3f} share {:.2f}{}\n", l, row, d.worst_head,
                 d.drop, d.share, d.single_head_deposit ? "  SINGLE-HEAD DEPOSIT" : "");
    }
  });
}

}  // namespace pelab::cli
