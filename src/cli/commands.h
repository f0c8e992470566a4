// One function per subcommand: each adds its options to the app and sets its callback.
// Commands are thin: parse, call the library, print.
#pragma once

#include <CLI/CLI.hpp>
#include <string>

namespace pelab {
class Store;
}

namespace pelab::cli {

void add_train(CLI::App& app);
void add_eval(CLI::App& app);
void add_export(CLI::App& app);
void add_data(CLI::App& app);
void add_predict(CLI::App& app);
void add_pe(CLI::App& app);
void add_config(CLI::App& app);
void add_ablate(CLI::App& app);
void add_logits(CLI::App& app);
void add_spectrum(CLI::App& app);
void add_removal(CLI::App& app);
void add_reproduce(CLI::App& app);
void add_sweep(CLI::App& app);
void add_runs(CLI::App& app);
void add_report(CLI::App& app);

// The report of one scale from the store, with the verdict tally printed (pelab report and
// pelab reproduce).
void write_scale_report(const Store& store, const std::string& scale, const std::string& out);
void add_bench(CLI::App& app);

}  // namespace pelab::cli
