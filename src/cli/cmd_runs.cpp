#include <fmt/format.h>

#include <cmath>

#include "cli/commands.h"
#include "store/store.h"
#include "sweep/sweep_spec.h"

namespace pelab::cli {

namespace {

std::string csv_field(const std::string& text) {
  if (text.find_first_of(",\"\n") == std::string::npos) return text;
  std::string out = "\"";
  for (char c : text) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

std::string number(double value) { return std::isnan(value) ? "" : fmt::format("{}", value); }
std::string number(const std::optional<double>& value) { return value ? number(*value) : ""; }

// One row per run and epoch (a run with no metrics yet gets one row with the epoch columns
// empty), every value in full precision.
void print_csv(const Store& store, const std::vector<RunRecord>& runs) {
  fmt::print(
      "run_id,name,sweep,setup,pe,task,seed,status,run_dir,train_seconds,final_train_accuracy,"
      "final_test_accuracy,epoch,train_loss,train_accuracy,test_loss,test_accuracy,lr,seconds,"
      "train_samples_per_s\n");
  for (const auto& r : runs) {
    const std::string run_part = fmt::format(
        "{},{},{},{},{},{},{},{},{},{},{},{}", r.id, csv_field(r.name), csv_field(r.sweep),
        csv_field(r.setup), csv_field(r.pe), csv_field(r.task), r.seed, run_status_name(r.status),
        csv_field(r.run_dir), number(r.train_seconds), number(r.final_train_accuracy),
        number(r.final_test_accuracy));
    const auto metrics = store.metrics(r.id);
    if (metrics.empty()) fmt::print("{},,,,,,,,\n", run_part);
    for (const auto& m : metrics)
      fmt::print("{},{},{},{},{},{},{},{},{}\n", run_part, m.epoch, number(m.train_loss),
                 number(m.train_accuracy), number(m.test_loss), number(m.test_accuracy),
                 number(m.lr), number(m.seconds), number(m.train_samples_per_s));
  }
}

void print_table(const std::vector<RunRecord>& runs) {
  std::vector<std::vector<std::string>> rows = {{"id", "name", "status", "pe", "task", "seed",
                                                 "epochs", "train_acc", "test_acc", "train_s",
                                                 "setup"}};
  for (const auto& r : runs)
    rows.push_back({std::to_string(r.id), r.name, run_status_name(r.status), r.pe, r.task,
                    std::to_string(r.seed), std::to_string(r.epochs_done),
                    r.final_train_accuracy ? fmt::format("{:.4f}", *r.final_train_accuracy) : "-",
                    r.final_test_accuracy ? fmt::format("{:.4f}", *r.final_test_accuracy) : "-",
                    fmt::format("{:.1f}", r.train_seconds), r.setup.empty() ? "-" : r.setup});
  std::vector<size_t> width(rows[0].size(), 0);
  for (const auto& row : rows)
    for (size_t c = 0; c < row.size(); ++c) width[c] = std::max(width[c], row[c].size());
  for (const auto& row : rows) {
    std::string line;
    for (size_t c = 0; c < row.size(); ++c)
      line += fmt::format("{:<{}}", row[c], c + 1 < row.size() ? width[c] + 2 : 0);
    fmt::print("{}\n", line);
  }
}

}  // namespace

void add_runs(CLI::App& app) {
  struct Args {
    std::string store_path = kDefaultStorePath, sweep, setup, status;
    bool csv = false;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("runs", "List the runs in the experiment store");
  cmd->add_option("--store", args->store_path, "experiment store")->capture_default_str();
  cmd->add_option("--sweep", args->sweep, "only this sweep's runs");
  cmd->add_option("--setup", args->setup, "only runs with this setup label");
  cmd->add_option("--status", args->status, "only runs in this state")
      ->check(CLI::IsMember({"queued", "running", "finished", "failed", "interrupted"}));
  cmd->add_flag("--csv", args->csv, "CSV on stdout: one row per run and epoch, with its metrics");
  cmd->callback([args] {
    const Store store(args->store_path, Store::Mode::kExisting);
    RunFilter filter;
    filter.sweep = args->sweep;
    filter.setup = args->setup;
    if (!args->status.empty()) filter.status = parse_run_status(args->status);
    const auto runs = store.list_runs(filter);
    if (args->csv) {
      print_csv(store, runs);
    } else if (runs.empty()) {
      fmt::print("no runs in {} match\n", args->store_path);
    } else {
      print_table(runs);
    }
  });
}

}  // namespace pelab::cli
