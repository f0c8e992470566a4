#include <fmt/format.h>

#include "analysis/training_probe.h"
#include "cli/commands.h"
#include "train/trainer.h"

namespace pelab::cli {

void add_train(CLI::App& app) {
  struct Args {
    std::string config_file, out_dir, resume_dir;
    std::vector<std::string> overrides;
    bool no_progress = false;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = app.add_subcommand(
      "train",
      "Train a model: pelab train --config F [key=value ...] --out DIR, or continue one: pelab "
      "train --resume DIR [train.epochs=N]");
  cmd->add_option("--config,-c", args->config_file, "TOML config (configs/tiny.toml, ...)")
      ->check(CLI::ExistingFile);
  auto* out = cmd->add_option("--out,-o", args->out_dir, "run folder to create");
  auto* resume = cmd->add_option("--resume", args->resume_dir, "run folder to continue")
                     ->check(CLI::ExistingDirectory);
  out->excludes(resume);
  cmd->add_option("overrides", args->overrides,
                  "config overrides key=value (pelab config keys lists them)");
  cmd->add_flag("--no-progress", args->no_progress, "no progress line on stderr");
  cmd->callback([args] {
    TrainOptions options;
    options.progress = !args->no_progress;
    // Per-epoch spectra and Hessian when the run's config asks for them (train.track_spectra).
    options.epoch_probe = [](Transformer& model, const DatasetSplit& split,
                             const Config& config) -> nlohmann::json {
      if (!config.train.track_spectra) return nullptr;
      return training_probe(model, split, config.train);
    };
    if (!args->resume_dir.empty()) {
      if (!args->config_file.empty())
        throw ConfigError(
            "--config cannot be combined with --resume: the run folder holds its "
            "config");
      int64_t epochs = 0;
      for (const auto& o : args->overrides) {
        // Only the length of the run may change when continuing it.
        Config probe;
        apply_override(probe, o);
        if (o.rfind("train.checkpoint_every_s=", 0) == 0) {
          options.checkpoint_every_s = probe.train.checkpoint_every_s;
          continue;
        }
        if (o.rfind("train.epochs=", 0) != 0)
          throw ConfigError(
              fmt::format("'{}' cannot change a resumed run; accepted with "
                          "--resume: train.epochs=N, train.checkpoint_every_s=S",
                          o));
        epochs = probe.train.epochs;
      }
      resume_run(args->resume_dir, options, epochs);
      return;
    }
    if (args->out_dir.empty())
      throw ConfigError("pelab train needs --out DIR (a new run folder) or --resume DIR");
    const Config config = load_config(args->config_file, args->overrides);
    fmt::print("run {}: pe={} task={} epochs={} samples={} d_model={} heads={} layers={}\n",
               args->out_dir, config.model.pe, config.task.name, config.train.epochs,
               config.task.samples, config.model.d_model, config.model.n_heads,
               config.model.n_layers);
    train_new_run(config, args->out_dir, options);
  });
}

}  // namespace pelab::cli
