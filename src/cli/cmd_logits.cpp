#include <fmt/format.h>

#include "analysis/decomposition.h"
#include "cli/commands.h"
#include "cli/run_inputs.h"
#include "report/heatmap.h"
#include "train/trainer.h"

namespace pelab::cli {

void add_logits(CLI::App& app) {
  struct Args {
    std::string run_dir, split = "test", positions = "valid", figure;
    int64_t layer = 0, head = 0, sample = 0;
    bool json = false, matrices = false;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = app.add_subcommand(
      "logits", "Split one head's attention logits into content and position terms");
  cmd->add_option("run", args->run_dir, "run folder")->required()->check(CLI::ExistingDirectory);
  cmd->add_option("--layer", args->layer, "layer (0-based)")->required();
  cmd->add_option("--head", args->head, "head (0-based)")->required();
  cmd->add_option("--sample", args->sample, "index of the sequence in the split (default 0)");
  cmd->add_option("--split", args->split, "test | train | all")
      ->check(CLI::IsMember({"test", "train", "all"}));
  cmd->add_option("--positions", args->positions,
                  "valid (the sequence's own tokens, default) | all (pads included)")
      ->check(CLI::IsMember({"valid", "all"}));
  cmd->add_flag("--json", args->json, "print the result as JSON");
  cmd->add_flag("--matrices", args->matrices, "include every matrix in the JSON");
  cmd->add_option("--figure", args->figure,
                  "SVG to write (default RUN/logits-lL-hH-sS.svg; 'none' for none)");
  cmd->callback([args] {
    auto [state, data] = load_run_with_split(args->run_dir, args->split);
    if (args->sample < 0 || args->sample >= data.size())
      throw ConfigError(fmt::format("--sample {} is out of range; the {} split has samples 0..{}",
                                    args->sample, args->split, data.size() - 1));
    const auto d = decompose_logits(state.model, data.tokens[args->sample],
                                    data.lengths[args->sample].item<int64_t>(), args->layer,
                                    args->head, args->positions == "valid");
    if (const auto figure = figure_path(
            args->figure, args->run_dir,
            fmt::format("logits-l{}-h{}-s{}.svg", args->layer, args->head, args->sample))) {
      std::vector<HeatmapPanel> panels{{"logits (model)", d.logits}};
      for (const auto& t : d.terms)
        panels.push_back({fmt::format("{} ({:.0f}%)", t.name, 100 * t.share), t.matrix});
      if (d.rotary.present) {
        panels.push_back({"content Gram A (unrotated)", d.rotary.content_gram.matrix});
        panels.push_back({"kernel T", d.rotary.kernel});
        panels.push_back({"A o T", d.rotary.hadamard});
      }
      write_heatmap_panels_svg(
          *figure, panels,
          fmt::format("{}: layer {} head {}, sample {} ({} positions)", state.config.model.pe,
                      args->layer, args->head, args->sample, d.positions));
      if (!args->json) fmt::print("figure: {}\n", figure->string());
    }
    if (args->json) {
      fmt::print("{}\n", decomposition_to_json(d, args->matrices).dump(2));
      return;
    }
    fmt::print("layer {} head {}, sample {} of the {} split, {} positions ({})\n", d.layer, d.head,
               args->sample, args->split, d.positions, state.config.model.pe);
    fmt::print("{:<20} {:>12} {:>8} {:>18}\n", "term", "||.||_F", "share", "Toeplitz distance");
    for (const auto& t : d.terms)
      fmt::print("{:<20} {:>12.4g} {:>7.1f}% {:>18.4f}\n", t.name, t.frobenius_norm, 100 * t.share,
                 t.toeplitz_distance);
    fmt::print("terms sum to the model's logits within {:.2g} (relative)\n",
               d.reconstruction_relative_error);
    if (d.rotary.present)
      fmt::print(
          "rotary channels: A o T differs from the exact rotated logits by {:.3f} (relative); "
          "Toeplitz distance of A {:.3f}, of the rotated logits {:.3f}\n",
          d.rotary.hadamard_relative_error, d.rotary.content_gram.toeplitz_distance,
          d.rotary.rotary_channels.toeplitz_distance);
  });
}

}  // namespace pelab::cli
