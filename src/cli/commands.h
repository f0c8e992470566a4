// One function per subcommand: each adds its options to the app and sets its callback.
// Commands are thin: parse, call the library, print.
#pragma once

#include <CLI/CLI.hpp>

namespace pelab::cli {

void add_train(CLI::App& app);
void add_eval(CLI::App& app);
void add_export(CLI::App& app);
void add_pe(CLI::App& app);
void add_config(CLI::App& app);
void add_ablate(CLI::App& app);
void add_bench(CLI::App& app);

}  // namespace pelab::cli
