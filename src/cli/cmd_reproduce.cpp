#include <fmt/format.h>

#include "cli/commands.h"
#include "cli/slurm_cli.h"
#include "reproduce/dry_run.h"
#include "reproduce/reproduce.h"
#include "sweep/sweep_runner.h"

namespace pelab::cli {

namespace {

// Every training run of the study, in a fixed order (the Slurm array's cell indices).
std::vector<std::pair<SweepSpec, SweepRun>> reproduce_cells(const ReproducePlan& plan,
                                                            const ReproduceOptions& options,
                                                            int64_t threads) {
  std::vector<std::pair<SweepSpec, SweepRun>> cells;
  for (const auto& setup : options.setups)
    for (const auto& spec : reproduce_sweeps(plan, setup, options))
      for (auto& run : expand_sweep(spec, threads)) cells.emplace_back(spec, std::move(run));
  return cells;
}

// Training as one array, then one job that ingests, analyses and writes the report: the local
// `pelab reproduce` command, which finds the runs trained and skips to the analyses.
void reproduce_on_slurm(const std::string& scale, const std::string& setup,
                        const ReproducePlan& plan, const ReproduceOptions& options,
                        const SlurmCliArgs& slurm, const std::string& report_dir, bool no_report) {
  const auto cells = reproduce_cells(plan, options, slurm.slurm.cpus_per_task);
  const std::string binary = std::filesystem::read_symlink("/proc/self/exe").string();
  const std::string scale_arg = std::filesystem::exists(scale) ? shared_path(scale) : scale;
  SlurmJob job;
  job.name = "reproduce " + plan.scale;
  for (const auto& c : cells) job.runs.push_back(c.second);
  const std::vector<std::string> common = {"reproduce",
                                           "--scale",
                                           scale_arg,
                                           "--setup",
                                           setup,
                                           "--out",
                                           shared_path(options.out_dir),
                                           "--store",
                                           shared_path(options.store_path)};
  job.cell_command = {binary};
  job.cell_command.insert(job.cell_command.end(), common.begin(), common.end());
  if (slurm.slurm.requeue) job.cell_command.push_back("--requeue");
  job.collect_command = {binary};
  job.collect_command.insert(job.collect_command.end(), common.begin(), common.end());
  if (no_report) {
    job.collect_command.push_back("--no-report");
  } else {
    job.collect_command.insert(job.collect_command.end(), {"--report", shared_path(report_dir)});
  }
  job.state_dir = options.out_dir / ".slurm";
  if (slurm.status) {
    fmt::print("{}", slurm_status(job));
  } else if (slurm.dry_run) {
    fmt::print("{}\n# then, after the array (--dependency=afterany):\n{}",
               array_script(job, unfinished_cells(job.runs), slurm.slurm),
               collect_script(job, slurm.slurm));
  } else {
    const SlurmSubmission s = submit_slurm(job, slurm.slurm);
    fmt::print(
        "reproduce {}: {} of {} runs submitted as array job {}; job {} then analyses them and "
        "writes the report; `pelab reproduce --scale {} --status` shows progress\n",
        plan.scale, s.cells, cells.size(), s.array_job_id.empty() ? "(none)" : s.array_job_id,
        s.collect_job_id, scale);
  }
}

}  // namespace

void add_reproduce(CLI::App& app) {
  struct Args {
    std::string scale = "small", setup = "both", out_dir, store_path = "runs/pelab.db", report_dir;
    int64_t workers = 0;
    bool no_report = false, no_progress = false;
    SlurmCliArgs slurm;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = app.add_subcommand(
      "reproduce",
      "Run the study at one scale: train every setting, analyse every run, write the report");
  cmd->add_option("--scale", args->scale,
                  "tiny (CI smoke) | small (default, 25-35 min) | small-full (~40 min) | "
                  "medium (4 layers, ~1.5 h) | paper | a plan file (configs/reproduce/*.toml)");
  cmd->add_option("--setup", args->setup, "faithful | standard | both (default)")
      ->check(CLI::IsMember({"faithful", "standard", "both"}));
  cmd->add_option("--workers", args->workers, "training processes (default: the plan's)")
      ->check(CLI::Range(int64_t{1}, int64_t{64}));
  cmd->add_option("--out", args->out_dir, "run folders (default runs/reproduce-SCALE)");
  cmd->add_option("--store", args->store_path, "experiment store (default runs/pelab.db)");
  cmd->add_option("--report", args->report_dir, "report folder (default reports/SCALE)");
  cmd->add_flag("--no-report", args->no_report, "train and analyse only");
  cmd->add_flag("--no-progress", args->no_progress, "no progress lines on stderr");
  add_slurm_options(cmd, args->slurm);
  cmd->get_option("--dry-run")
      ->description(
          "print the runs, their estimated samples and hours on this machine (and with --backend "
          "slurm the batch scripts); train and submit nothing");
  cmd->callback([args] {
    const ReproducePlan plan = load_plan(args->scale, ".");
    ReproduceOptions options;
    options.setups = args->setup == "both" ? setup_names() : std::vector<std::string>{args->setup};
    options.out_dir = args->out_dir.empty() ? "runs/reproduce-" + plan.scale : args->out_dir;
    options.store_path = args->store_path;
    options.workers = args->workers;
    options.progress = !args->no_progress;
    // Check every sweep's configs before anything trains.
    for (const auto& setup : options.setups) (void)reproduce_sweeps(plan, setup, options);
    const SlurmCliArgs& slurm = args->slurm;
    const std::string report_dir =
        args->report_dir.empty() ? "reports/" + plan.scale : args->report_dir;
    if (slurm.dry_run) fmt::print("{}", dry_run_text(plan_dry_run(plan, options)));
    if (slurm.cell >= 0) {
      const auto cells =
          reproduce_cells(plan, options, slurm_cpus_per_task().value_or(available_cores()));
      check_cell_index(slurm.cell, static_cast<int64_t>(cells.size()));
      const auto& [spec, run] = cells[static_cast<size_t>(slurm.cell)];
      run_cell(spec, run, slurm.slurm.requeue);
      return;
    }
    if (slurm.backend == "slurm" || slurm.status) {
      reproduce_on_slurm(args->scale, args->setup, plan, options, slurm, report_dir,
                         args->no_report);
      return;
    }
    if (slurm.dry_run) return;
    std::filesystem::create_directories(std::filesystem::path(options.store_path).parent_path());
    Store store(options.store_path);
    const auto s = run_reproduce(plan, options, store);
    fmt::print(
        "reproduce {}: {} runs ({} failed), {} analyses; training {:.0f} s, analysis {:.0f} s\n",
        plan.scale, s.runs, s.failed, s.analyses, s.train_seconds, s.analysis_seconds);
    if (s.interrupted) throw std::runtime_error("interrupted; run the same command to resume");
    if (!args->no_report) {
      write_scale_report(store, plan.scale, report_dir);
    }
    if (s.failed > 0)
      throw std::runtime_error(fmt::format(
          "{} run(s) failed; their logs are in the store (pelab runs) and their folders' "
          "train.log",
          s.failed));
  });
}

}  // namespace pelab::cli
