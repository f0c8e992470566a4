#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "train/early_stopping.h"
#include "train/eval_overrides.h"
#include "train/trainer.h"

namespace pelab::cli {

void add_eval(CLI::App& app) {
  struct Args {
    std::string run_dir, split = "test";
    bool json = false;
    std::vector<std::string> overrides;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("eval", "Evaluate a run's checkpoint on its data");
  cmd->add_option("run", args->run_dir, "run folder")->required()->check(CLI::ExistingDirectory);
  cmd->add_option("--split", args->split, "test | train | all")
      ->check(CLI::IsMember({"test", "train", "all"}));
  cmd->add_flag("--json", args->json, "print {\"accuracy\":..,\"loss\":..,\"samples\":..}");
  cmd->add_option("overrides", args->overrides,
                  "key=value evaluation-time overrides: model.rope_scaling, "
                  "model.rope_scaling_factor, model.rope_original_length");
  cmd->callback([args] {
    TrainState state = load_checkpoint(reported_checkpoint_path(args->run_dir));
    if (!args->overrides.empty()) {
      state.config = config_with_eval_overrides(state.config, args->overrides);
      state.model = rebuild_model(state.model, state.config);
    }
    configure_threads(state.config.train.threads);
    const DatasetSplit split = make_split(state.config.task);
    const EvalResult r = evaluate(state.model, select_split(split, args->split),
                                  eval_batch_size(state.config.train));
    if (args->json) {
      nlohmann::json j = {{"accuracy", r.accuracy}, {"loss", r.loss}, {"samples", r.samples}};
      fmt::print("{}\n", j.dump());
    } else {
      fmt::print("{} split of {} (epoch {}): accuracy {:.4f}  loss {:.4f}  samples {}\n",
                 args->split, args->run_dir, state.epochs_done, r.accuracy, r.loss, r.samples);
    }
  });
}

}  // namespace pelab::cli
