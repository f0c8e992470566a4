// pelab data: the exact sequences of a run's (or a config's) train/test split as a file for
// Python: safetensors, or JSON lines for FILE.jsonl (src/train/data_file.h).
#include <fmt/format.h>

#include <filesystem>

#include "cli/commands.h"
#include "train/data_file.h"
#include "train/trainer.h"

namespace pelab::cli {
namespace fs = std::filesystem;

namespace {

// The configuration the rows come from: RUN/config.toml, or --config F with overrides.
Config data_config(const std::string& config_file, const std::vector<std::string>& positionals,
                   std::string& source) {
  if (!config_file.empty()) {
    source = config_file;
    return load_config(config_file, positionals);
  }
  if (positionals.size() != 1)
    throw ConfigError(
        "pelab data needs one run folder (pelab data RUN --out FILE) or --config F [key=value "
        "...]");
  const fs::path run = positionals[0];
  if (!fs::is_directory(run))
    throw ConfigError(fmt::format(
        "'{}' is not a run folder; accepted: a folder made by pelab train, or --config F",
        run.string()));
  if (!fs::is_regular_file(run / "config.toml"))
    throw ConfigError(
        fmt::format("{}: no config.toml (is this a pelab run folder?)", run.string()));
  source = run.string();
  return load_config(run / "config.toml", {});
}

}  // namespace

void add_data(CLI::App& app) {
  struct Args {
    std::string config_file, split = "test", out_file;
    std::vector<std::string> positionals;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = app.add_subcommand(
      "data",
      "Write the exact tokens, lengths and labels of a split: pelab data RUN --split test --out "
      "FILE.safetensors|FILE.jsonl, or pelab data --config F [key=value ...] --out FILE");
  cmd->add_option("run_or_overrides", args->positionals,
                  "run folder; or, with --config, key=value overrides");
  cmd->add_option("--config,-c", args->config_file, "TOML config instead of a run folder")
      ->check(CLI::ExistingFile);
  cmd->add_option("--split", args->split,
                  "train | test (default) | all (train rows, then test rows, each marked)")
      ->check(CLI::IsMember({"train", "test", "all"}));
  cmd->add_option("--out,-o", args->out_file, "FILE.safetensors or FILE.jsonl")->required();
  cmd->callback([args] {
    data_format_for(args->out_file);  // a bad extension fails before any work
    std::string source;
    const Config config = data_config(args->config_file, args->positionals, source);
    const DataFile rows = data_of_split(make_split(config.task), args->split);
    write_data_file(args->out_file, rows,
                    {{"format", "pelab-data"},
                     {"split", args->split},
                     {"source", source},
                     {"config_toml", to_toml(config)}});
    fmt::print("wrote {} rows of {} tokens ({} split of {}) to {}\n", rows.data.size(),
               rows.data.tokens.size(1), args->split, source, args->out_file);
  });
}

}  // namespace pelab::cli
