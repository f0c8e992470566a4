#include <fmt/format.h>

#include "analysis/analysis_progress.h"
#include "analysis/removal.h"
#include "cli/commands.h"
#include "cli/run_inputs.h"
#include "report/heatmap.h"
#include "train/trainer.h"

namespace pelab::cli {

void add_removal(CLI::App& app) {
  struct Args {
    std::string run_dir, split = "test", figure;
    int64_t draws = 5, samples = 0;
    uint64_t seed = 0;
    bool json = false, no_progress = false;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = app.add_subcommand(
      "removal",
      "Accuracy with the positional vector p_i removed before each layer, vs random vectors");
  cmd->add_option("run", args->run_dir, "run folder (an absolute-PE model)")
      ->required()
      ->check(CLI::ExistingDirectory);
  cmd->add_option("--split", args->split, "test | train | all")
      ->check(CLI::IsMember({"test", "train", "all"}));
  cmd->add_option("--draws", args->draws, "random same-norm vectors to compare with (default 5)")
      ->check(CLI::Range(int64_t{1}, int64_t{100}));
  cmd->add_option("--seed", args->seed, "seed of the random vectors (default 0)");
  cmd->add_flag("--json", args->json, "print the result as JSON");
  cmd->add_option("--samples", args->samples,
                  "analyse a seeded subset of N sequences of the split (default: all)")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 40));
  cmd->add_flag("--no-progress", args->no_progress, "no progress line on stderr");
  cmd->add_option("--figure", args->figure,
                  "SVG to write (default RUN/removal-SPLIT.svg; 'none' for none)");
  cmd->callback([args] {
    auto [state, all] = load_run_with_split(args->run_dir, args->split);
    const Dataset data = seeded_subset(all, args->samples, args->seed);
    AnalysisProgress progress("removal", data.size(), !args->no_progress);
    const auto r = remove_positional_component(state.model, data, args->draws, args->seed,
                                               eval_batch_size(state.config), progress.callback());
    if (const auto figure =
            figure_path(args->figure, args->run_dir, fmt::format("removal-{}.svg", args->split))) {
      LineSeries position{"p_i removed", {}, {}, {}}, random{"random vector removed", {}, {}, {}},
          baseline{"intact model", {}, {}, {}};
      for (const auto& l : r.layers) {
        const double x = double(l.layer);
        position.x.push_back(x);
        position.y.push_back(l.accuracy_without_position);
        random.x.push_back(x);
        random.y.push_back(l.random_mean);
        random.error.push_back(l.random_std);
        baseline.x.push_back(x);
        baseline.y.push_back(r.baseline_accuracy);
      }
      write_line_plot_svg(*figure, {position, random, baseline},
                          {fmt::format("{}: positional-component removal ({} split, {} draws)",
                                       state.config.model.pe, args->split, args->draws),
                           "layer whose input loses the vector", "accuracy"});
      if (!args->json) fmt::print("figure: {}\n", figure->string());
    }
    if (args->json) {
      fmt::print("{}\n", removal_to_json(r, args->split).dump(2));
      return;
    }
    fmt::print("{} split, {} samples: baseline accuracy {:.4f}\n", args->split, r.samples,
               r.baseline_accuracy);
    for (const auto& l : r.layers)
      fmt::print("layer {}: p_i removed {:.4f} | random removed {:.4f} +- {:.4f}\n", l.layer,
                 l.accuracy_without_position, l.random_mean, l.random_std);
  });
}

}  // namespace pelab::cli
