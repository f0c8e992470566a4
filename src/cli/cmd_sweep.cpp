#include <fmt/format.h>
#include <fmt/ranges.h>

#include "cli/commands.h"
#include "store/store.h"
#include "sweep/sweep_runner.h"

namespace pelab::cli {

void add_sweep(CLI::App& app) {
  struct Args {
    std::string file, store_path, out_dir;
    int64_t workers = 1;
    bool list = false, quiet = false;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = app.add_subcommand(
      "sweep",
      "Train every run of a grid (PEs x tasks x seeds x any config key) in worker processes and "
      "record them in the store; re-running skips finished runs and resumes unfinished ones");
  cmd->add_option("file", args->file, "sweep file (TOML; docs/STORE.md, configs/sweeps/)")
      ->required();
  cmd->add_option("--workers,-j", args->workers,
                  "runs trained at once; each gets max(1, cores / workers) threads")
      ->check(CLI::Range(1, 256));
  cmd->add_option("--store", args->store_path,
                  "experiment store (default: the sweep file's `store`, else runs/pelab.db)");
  cmd->add_option("--out", args->out_dir,
                  "folder of the run folders (default: the sweep file's `out`, else runs/NAME)");
  cmd->add_flag("--list", args->list, "print the runs the grid expands to; train nothing");
  cmd->add_flag("--quiet,-q", args->quiet, "no progress lines on stderr");
  cmd->callback([args] {
    SweepSpec spec = parse_sweep_file(args->file);
    if (!args->store_path.empty()) spec.store_path = args->store_path;
    if (!args->out_dir.empty()) spec.out_dir = args->out_dir;
    const std::vector<SweepRun> runs = expand_sweep(spec, threads_per_worker(args->workers));
    if (args->list) {
      for (const auto& run : runs)
        fmt::print("{}  {}  {}\n", run.name, run.run_dir.string(), fmt::join(run.overrides, " "));
      return;
    }
    Store store(spec.store_path);
    SweepOptions options;
    options.workers = args->workers;
    options.progress = !args->quiet;
    const SweepSummary s = run_sweep(spec, runs, store, options);
    fmt::print(
        "sweep {}: {} runs: {} finished now, {} already finished, {} failed, {} left; "
        "{:.1f} s; store {}\n",
        spec.name, s.total, s.finished, s.skipped, s.failed, s.remaining, s.seconds,
        spec.store_path.string());
    if (s.interrupted) throw CLI::RuntimeError(130);
    if (s.failed > 0) {
      fmt::print(stderr,
                 "pelab sweep: {} runs failed; `pelab runs --sweep {} --status failed` lists "
                 "them, each run folder's train.log says why; re-running the sweep retries them\n",
                 s.failed, spec.name);
      throw CLI::RuntimeError(1);
    }
  });
}

}  // namespace pelab::cli
