// The --backend slurm options shared by `pelab sweep` and `pelab reproduce` (docs/CLUSTER.md).
#pragma once

#include <CLI/CLI.hpp>
#include <filesystem>
#include <memory>
#include <string>

#include "sweep/slurm_backend.h"

namespace pelab::cli {

// A path as seen from any node of the cluster (the shared filesystem): absolute.
inline std::string shared_path(const std::filesystem::path& p) {
  return std::filesystem::absolute(p).lexically_normal().string();
}

struct SlurmCliArgs {
  std::string backend = "local";
  SlurmOptions slurm;
  bool dry_run = false, status = false;
  int64_t cell = -1;  // an array element's own run; -1 = none
};

inline void add_slurm_options(CLI::App* cmd, SlurmCliArgs& a) {
  cmd->add_option("--backend", a.backend,
                  "local (worker processes here, default) | slurm (a job array; docs/CLUSTER.md)")
      ->check(CLI::IsMember({"local", "slurm"}));
  const std::string group = "Slurm (--backend slurm)";
  cmd->add_option("--partition", a.slurm.partition, "sbatch --partition")->group(group);
  cmd->add_option("--time", a.slurm.time, "sbatch --time per run, e.g. 04:00:00")->group(group);
  cmd->add_option("--cpus-per-task", a.slurm.cpus_per_task,
                  "cores per run (its train.threads); default 1")
      ->check(CLI::Range(1, 1024))
      ->group(group);
  cmd->add_option("--mem", a.slurm.mem, "sbatch --mem per run, e.g. 8G")->group(group);
  cmd->add_option("--max-parallel", a.slurm.max_parallel,
                  "runs at once (the array's %N throttle); default no limit")
      ->check(CLI::Range(1, 1000000))
      ->group(group);
  cmd->add_option("--sbatch-arg", a.slurm.sbatch_args,
                  "extra sbatch option, repeatable: --sbatch-arg=--account=NAME")
      ->group(group);
  cmd->add_option("--signal-seconds", a.slurm.signal_seconds,
                  "SIGTERM this long before the time limit, so runs checkpoint (default 120)")
      ->check(CLI::Range(1, 65535))
      ->group(group);
  cmd->add_flag("--requeue", a.slurm.requeue,
                "a run stopped by SIGTERM (time limit, preemption) requeues itself and resumes")
      ->group(group);
  cmd->add_flag("--dry-run", a.dry_run, "print the batch scripts; submit nothing")->group(group);
  cmd->add_flag("--status", a.status,
                "show the queue and every run folder: pending, running, finished, failed")
      ->group(group);
  cmd->add_option("--cell", a.cell,
                  "train only run I (what an array element runs; never opens the store)")
      ->check(CLI::NonNegativeNumber)
      ->group(group);
}

}  // namespace pelab::cli
