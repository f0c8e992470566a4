#include <fmt/format.h>

#include "cli/commands.h"
#include "pe/pe.h"

namespace pelab::cli {

void add_pe(CLI::App& app) {
  auto* cmd = app.add_subcommand("pe", "Positional encodings");
  cmd->require_subcommand(1);
  auto* list = cmd->add_subcommand("list", "List every positional encoding (name, kind, summary)");
  list->callback([] {
    for (const auto& info : pe_list())
      fmt::print("{:<11} {:<17} {}\n", info.name, pe_kind_name(info.kind), info.summary);
  });
}

void add_config(CLI::App& app) {
  auto* cmd = app.add_subcommand("config", "Configuration keys and resolved configs");
  cmd->require_subcommand(1);
  auto* keys = cmd->add_subcommand("keys", "List every config key with what it accepts");
  keys->callback([] {
    for (const auto& k : config_keys()) fmt::print("{:<32} {:<40} {}\n", k.key, k.accepted, k.doc);
  });
  struct Args {
    std::string file;
    std::vector<std::string> overrides;
  };
  auto args = std::make_shared<Args>();
  auto* show = cmd->add_subcommand("show", "Print the resolved config of a file plus overrides");
  show->add_option("--config,-c", args->file, "TOML config")->check(CLI::ExistingFile);
  show->add_option("overrides", args->overrides, "key=value overrides");
  show->callback([args] { fmt::print("{}", to_toml(load_config(args->file, args->overrides))); });
}

}  // namespace pelab::cli
