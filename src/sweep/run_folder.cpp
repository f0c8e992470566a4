#include "sweep/run_folder.h"

#include <fmt/format.h>

#include <fstream>
#include <sstream>

namespace pelab {
namespace fs = std::filesystem;

// Epochs recorded in a run folder's metrics.json (none when missing or unreadable).
std::vector<EpochMetrics> folder_metrics(const fs::path& run_dir) {
  std::ifstream in(run_dir / "metrics.json");
  if (!in) return {};
  std::stringstream text;
  text << in.rdbuf();
  try {
    return metrics_from_json(text.str());
  } catch (const std::exception&) {
    return {};
  }
}

namespace {

// "" when the folder's config and the sweep's agree on everything that shapes the result
// (train.threads and train.checkpoint_every_s may differ; train.epochs may grow), else the first
// key that differs.
std::string config_difference(Config folder, Config sweep) {
  folder.train.threads = sweep.train.threads;
  folder.train.checkpoint_every_s = sweep.train.checkpoint_every_s;
  folder.train.epochs = sweep.train.epochs;
  std::istringstream a(to_toml(folder)), b(to_toml(sweep));
  std::string line_a, line_b, section;
  while (std::getline(a, line_a) && std::getline(b, line_b)) {
    if (!line_a.empty() && line_a.front() == '[') section = line_a.substr(1, line_a.size() - 2);
    if (line_a != line_b) {
      const auto eq = line_a.find(" = ");
      return fmt::format("{}.{}: the folder has {}, the sweep asks for {}", section,
                         line_a.substr(0, eq), line_a.substr(eq + 3),
                         line_b.substr(line_b.find(" = ") + 3));
    }
  }
  return "";
}

}  // namespace

RunFolder inspect_run_folder(const SweepSpec& spec, const SweepRun& run) {
  RunFolder f;
  f.threads = run.config.train.threads;
  f.has_checkpoint = fs::exists(checkpoint_path(run.run_dir));
  f.has_config = fs::exists(run.run_dir / "config.toml");
  f.done = folder_metrics(run.run_dir);
  if (!f.has_checkpoint && f.done.empty()) return f;
  Config folder;
  try {
    folder = load_config(run.run_dir / "config.toml", {});
  } catch (const ConfigError& e) {
    throw ConfigError(
        fmt::format("run '{}': its folder holds a run but no readable "
                    "config.toml ({}); move '{}' away to start it afresh",
                    run.name, e.what(), run.run_dir.string()));
  }
  const std::string difference = config_difference(folder, run.config);
  if (!difference.empty())
    throw ConfigError(
        fmt::format("{}: run '{}' exists in '{}' with another config ({}); "
                    "restore the sweep file, or give the sweep another name or "
                    "out folder",
                    spec.source, run.name, run.run_dir.string(), difference));
  const int64_t epochs = run.config.train.epochs;
  if (folder.train.epochs > epochs)
    throw ConfigError(
        fmt::format("{}: run '{}' in '{}' has train.epochs = {}, the sweep asks "
                    "for {}; accepted: the same or more epochs",
                    spec.source, run.name, run.run_dir.string(), folder.train.epochs, epochs));
  f.threads = folder.train.threads;
  f.extend_epochs = folder.train.epochs < epochs;
  return f;
}

}  // namespace pelab
