// The Slurm backend of `pelab sweep` and `pelab reproduce` (docs/CLUSTER.md).
//
// Submission (on the submit host): one job array with one element per run whose folder is not
// complete, and a job that depends on it (--dependency=afterany) and runs the collect command.
// Each element runs `pelab sweep FILE --cell I` (or `pelab reproduce ... --cell I`): it trains
// only its own run folder on the shared filesystem and never opens the SQLite store, whose
// locking is not safe on network filesystems. The collect step ingests the finished folders into
// the store. Slurm's warning signal (--signal=B:TERM@S, `exec` so pelab is the batch shell)
// makes pelab train checkpoint and exit 75; with --requeue the element requeues itself and
// resumes from that checkpoint. Re-submitting skips complete folders and resumes the others.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "sweep/sweep_spec.h"

namespace pelab {

struct SlurmOptions {
  std::string partition, time, mem;  // "" = Slurm's defaults
  int64_t cpus_per_task = 1;
  int64_t max_parallel = 0;              // the array's %N throttle; 0 = none
  std::vector<std::string> sbatch_args;  // extra sbatch options, one per #SBATCH line
  bool requeue = false;                  // elements stopped by SIGTERM requeue themselves
  int64_t signal_seconds = 120;          // SIGTERM this long before the time limit
  std::string job_name = "pelab";
};

// What to submit: the runs (cells) in order, and the commands an element and the collect job run
// (argv, without the cell index; every path in them absolute).
struct SlurmJob {
  std::string name;
  std::vector<SweepRun> runs;
  std::vector<std::string> cell_command;     // + "--cell" "$SLURM_ARRAY_TASK_ID"
  std::vector<std::string> collect_command;  // run by the dependent job
  std::filesystem::path state_dir;           // scripts, logs and the job ids (out/.slurm)
};

// Cells whose run folders do not hold every epoch yet.
std::vector<int64_t> unfinished_cells(const std::vector<SweepRun>& runs);

// The batch script of the array over `cells` (Slurm's compact index list, e.g. "0-3,7").
std::string array_script(const SlurmJob& job, const std::vector<int64_t>& cells,
                         const SlurmOptions& options);
// The batch script of the collect job.
std::string collect_script(const SlurmJob& job, const SlurmOptions& options);

struct SlurmSubmission {
  std::string array_job_id, collect_job_id;  // "" when nothing needed submitting
  int64_t cells = 0;
};

// Writes the scripts to job.state_dir, submits the array and the collect job (sbatch --parsable)
// and records their ids in job.state_dir/jobs.json. Nothing to train: submits only the collect
// job. Throws std::runtime_error with sbatch's message when it refuses.
SlurmSubmission submit_slurm(const SlurmJob& job, const SlurmOptions& options);

// `--status`: the queue's view of the last submission (squeue) and every folder's state:
// pending, running, finished, or failed/interrupted with the last lines of its train.log.
std::string slurm_status(const SlurmJob& job);

// Trains one cell (run) in this process (an array element, or by hand): starts or resumes
// its folder, appending pelab's output to the folder's train.log. Uses SLURM_CPUS_PER_TASK
// threads when the sweep does not set train.threads. On SIGTERM/SIGINT it checkpoints and
// rethrows TrainingInterrupted; with `requeue` inside a Slurm array element it first asks Slurm to
// requeue the element (scontrol requeue).
void run_cell(const SweepSpec& spec, const SweepRun& run, bool requeue);

// The cell `index` of `count` cells, or a ConfigError naming the accepted range.
void check_cell_index(int64_t index, int64_t count);

// SLURM_CPUS_PER_TASK when set (and positive), else nothing.
std::optional<int64_t> slurm_cpus_per_task();

}  // namespace pelab
