#include <fmt/format.h>

#include "cli/commands.h"
#include "reproduce/dry_run.h"
#include "reproduce/reproduce.h"

namespace pelab::cli {

void add_reproduce(CLI::App& app) {
  struct Args {
    std::string scale = "small", setup = "both", out_dir, store_path = "runs/pelab.db", report_dir;
    int64_t workers = 0;
    bool no_report = false, no_progress = false, dry_run = false;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = app.add_subcommand(
      "reproduce",
      "Run the study at one scale: train every setting, analyse every run, write the report");
  cmd->add_option(
      "--scale", args->scale,
      "tiny (CI smoke) | small (default, ~15 min) | medium (4 layers, ~1.5 h) | paper | a "
      "plan file "
      "(configs/reproduce/*.toml)");
  cmd->add_option("--setup", args->setup, "faithful | standard | both (default)")
      ->check(CLI::IsMember({"faithful", "standard", "both"}));
  cmd->add_option("--workers", args->workers, "training processes (default: the plan's)")
      ->check(CLI::Range(int64_t{1}, int64_t{64}));
  cmd->add_option("--out", args->out_dir, "run folders (default runs/reproduce-SCALE)");
  cmd->add_option("--store", args->store_path, "experiment store (default runs/pelab.db)");
  cmd->add_option("--report", args->report_dir, "report folder (default reports/SCALE)");
  cmd->add_flag("--no-report", args->no_report, "train and analyse only");
  cmd->add_flag("--no-progress", args->no_progress, "no progress lines on stderr");
  cmd->add_flag("--dry-run", args->dry_run,
                "print the runs, their estimated samples and hours on this machine; train nothing");
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
    if (args->dry_run) {
      fmt::print("{}", dry_run_text(plan_dry_run(plan, options)));
      return;
    }
    std::filesystem::create_directories(std::filesystem::path(options.store_path).parent_path());
    Store store(options.store_path);
    const auto s = run_reproduce(plan, options, store);
    fmt::print(
        "reproduce {}: {} runs ({} failed), {} analyses; training {:.0f} s, analysis {:.0f} s\n",
        plan.scale, s.runs, s.failed, s.analyses, s.train_seconds, s.analysis_seconds);
    if (s.interrupted) throw std::runtime_error("interrupted; run the same command to resume");
    if (!args->no_report) {
      const std::string report_dir =
          args->report_dir.empty() ? "reports/" + plan.scale : args->report_dir;
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
