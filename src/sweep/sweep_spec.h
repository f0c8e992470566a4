// A sweep: one base configuration, fixed overrides, and a grid of config keys whose Cartesian
// product gives the runs. Read from a TOML file (docs/STORE.md, "Sweep files"):
//
//   name = "pe-grid"                 # required; [A-Za-z0-9_.-]
//   base = "configs/tiny.toml"       # optional; relative to the sweep file, else to the cwd
//   setup = "standard"               # optional label stored with every run
//   out = "runs/pe-grid"             # optional; default runs/<name> (relative to the cwd)
//   store = "runs/pelab.db"          # optional; default runs/pelab.db (relative to the cwd)
//   [set]                            # optional fixed overrides, any config key
//   "train.epochs" = 5
//   [grid]                           # any config key -> list of values
//   "model.pe" = ["nope", "rope"]
//   "train.seed" = [0, 1, 2]
//
// Code (pelab reproduce) may also fill a SweepSpec directly.
#pragma once

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "config/config.h"

namespace pelab {

struct SweepSpec {
  std::string name;
  std::string setup;
  std::filesystem::path base_config;         // "" = the built-in defaults
  std::vector<std::string> fixed_overrides;  // "key=value", applied before the grid's
  // key -> values (as override text), in the order the run names list them.
  std::vector<std::pair<std::string, std::vector<std::string>>> grid;
  // Grid points left out: a point is skipped when its grid overrides include every "key=value"
  // of one entry (reproduce plans' task_seeds: Task 2 on fewer seeds than Task 1).
  std::vector<std::vector<std::string>> skip;
  std::filesystem::path out_dir;  // run folders go to out_dir/<run name>
  std::filesystem::path store_path;
  std::string source;  // the sweep file, for messages
};

struct SweepRun {
  std::string name;        // from the grid values: "rope-distance-s0", "rope-rotary_heads=2-s1"
  std::string store_name;  // "<sweep name>/<run name>", unique in the store
  std::filesystem::path run_dir;
  std::vector<std::string> overrides;  // fixed overrides, then this run's grid values
  Config config;
};

inline constexpr const char* kDefaultStorePath = "runs/pelab.db";

// Reads and checks a sweep file. Throws ConfigError naming the file, the key, the value seen and
// what is accepted.
SweepSpec parse_sweep_file(const std::filesystem::path& file);

// The Cartesian product of the grid, each run's config loaded and validated (including that its
// task can be generated), so a bad value stops the sweep before anything starts. Unless the spec
// sets train.threads itself, every run gets train.threads = threads_per_worker. A grid of more than
// 10000 runs is refused before any run is expanded.
std::vector<SweepRun> expand_sweep(const SweepSpec& spec, int64_t threads_per_worker);

}  // namespace pelab
