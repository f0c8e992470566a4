#include <fmt/format.h>

#include "cli/commands.h"
#include "train/checkpoint.h"
#include "train/early_stopping.h"
#include "train/safetensors.h"

namespace pelab::cli {

void add_export(CLI::App& app) {
  struct Args {
    std::string run_dir, out_file;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = app.add_subcommand(
      "export", "Write a run's weights as safetensors (tensor names: docs/CHECKPOINTS.md)");
  cmd->add_option("run", args->run_dir, "run folder")->required()->check(CLI::ExistingDirectory);
  cmd->add_option("--out,-o", args->out_file, "FILE.safetensors")->required();
  cmd->callback([args] {
    TrainState state = load_checkpoint(reported_checkpoint_path(args->run_dir));
    std::vector<std::pair<std::string, torch::Tensor>> tensors;
    for (const auto& p : state.model->named_parameters()) tensors.emplace_back(p.key(), p.value());
    for (const auto& b : state.model->named_buffers()) tensors.emplace_back(b.key(), b.value());
    std::map<std::string, std::string> metadata = {
        {"format", "pelab"},
        {"pe", state.config.model.pe},
        {"epochs_done", std::to_string(state.epochs_done)},
        {"config_toml", to_toml(state.config)}};
    write_safetensors(args->out_file, tensors, metadata);
    fmt::print("wrote {} tensors to {}\n", tensors.size(), args->out_file);
  });
}

}  // namespace pelab::cli
