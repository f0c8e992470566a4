#include <fmt/format.h>
#include <fmt/ranges.h>

#include "cli/commands.h"
#include "cli/slurm_cli.h"
#include "store/store.h"
#include "sweep/slurm_backend.h"
#include "sweep/sweep_runner.h"

namespace pelab::cli {

namespace {

SlurmJob sweep_slurm_job(const std::string& file, const SweepSpec& spec,
                         const std::vector<SweepRun>& runs, bool requeue) {
  const std::string binary = std::filesystem::read_symlink("/proc/self/exe").string();
  SlurmJob job;
  job.name = "sweep " + spec.name;
  job.runs = runs;
  job.cell_command = {binary, "sweep", shared_path(file), "--out", shared_path(spec.out_dir)};
  if (requeue) job.cell_command.push_back("--requeue");
  job.collect_command = {binary,
                         "sweep",
                         shared_path(file),
                         "--out",
                         shared_path(spec.out_dir),
                         "--store",
                         shared_path(spec.store_path),
                         "--collect"};
  job.state_dir = spec.out_dir / ".slurm";
  return job;
}

}  // namespace

void add_sweep(CLI::App& app) {
  struct Args {
    std::string file, store_path, out_dir;
    int64_t workers = 1;
    bool list = false, quiet = false, collect = false;
    SlurmCliArgs slurm;
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
  cmd->add_flag("--collect", args->collect,
                "record the finished run folders in the store; train nothing (what the Slurm "
                "backend's last job runs)");
  add_slurm_options(cmd, args->slurm);
  cmd->callback([args] {
    SweepSpec spec = parse_sweep_file(args->file);
    if (!args->store_path.empty()) spec.store_path = args->store_path;
    if (!args->out_dir.empty()) spec.out_dir = args->out_dir;
    const SlurmCliArgs& slurm = args->slurm;
    const bool on_slurm = slurm.backend == "slurm";
    // A Slurm element's threads are its cores; locally they share this machine's.
    const int64_t threads = slurm.cell >= 0 ? slurm_cpus_per_task().value_or(available_cores())
                            : on_slurm      ? slurm.slurm.cpus_per_task
                                            : threads_per_worker(args->workers);
    const std::vector<SweepRun> runs = expand_sweep(spec, threads);
    if (args->list) {
      for (const auto& run : runs)
        fmt::print("{}  {}  {}\n", run.name, run.run_dir.string(), fmt::join(run.overrides, " "));
      return;
    }
    if (slurm.cell >= 0) {
      check_cell_index(slurm.cell, static_cast<int64_t>(runs.size()));
      run_cell(spec, runs[static_cast<size_t>(slurm.cell)], slurm.slurm.requeue);
      return;
    }
    if (on_slurm || slurm.status || slurm.dry_run) {
      const SlurmJob job = sweep_slurm_job(args->file, spec, runs, slurm.slurm.requeue);
      if (slurm.status) {
        fmt::print("{}", slurm_status(job));
      } else if (slurm.dry_run) {
        fmt::print("{}\n# then, after the array (--dependency=afterany):\n{}",
                   array_script(job, unfinished_cells(runs), slurm.slurm),
                   collect_script(job, slurm.slurm));
      } else {
        const SlurmSubmission s = submit_slurm(job, slurm.slurm);
        fmt::print(
            "sweep {}: {} of {} runs submitted as array job {}; collect job {} records them in "
            "{}; `pelab sweep {} --status` shows progress\n",
            spec.name, s.cells, runs.size(), s.array_job_id.empty() ? "(none)" : s.array_job_id,
            s.collect_job_id, spec.store_path.string(), args->file);
      }
      return;
    }
    Store store(spec.store_path);
    if (args->collect) {
      const SweepSummary s = collect_sweep(spec, runs, store, !args->quiet);
      fmt::print(
          "sweep {}: {} runs: {} finished now, {} already recorded, {} unfinished; store {}\n",
          spec.name, s.total, s.finished, s.skipped, s.remaining + s.failed,
          spec.store_path.string());
      if (s.remaining + s.failed > 0) throw CLI::RuntimeError(1);
      return;
    }
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
