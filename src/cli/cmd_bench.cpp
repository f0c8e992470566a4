#include <fmt/format.h>

#include "bench/bench.h"
#include "cli/commands.h"

namespace pelab::cli {

void add_bench(CLI::App& app) {
  struct Args {
    std::string config_file;
    std::vector<std::string> overrides;
    BenchOptions options;
    bool json = false;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = app.add_subcommand(
      "bench",
      "Measure training and evaluation throughput: pelab bench --config F [key=value ...] "
      "[--json] (configs/bench-small.toml, configs/bench-paper.toml; docs/PERFORMANCE.md)");
  cmd->add_option("--config,-c", args->config_file, "TOML config")->check(CLI::ExistingFile);
  cmd->add_option("overrides", args->overrides,
                  "config overrides key=value, e.g. model.pe=alibi model.fused_attention=false");
  cmd->add_option("--seconds", args->options.min_seconds, "timed seconds per phase, at least")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--min-steps", args->options.min_steps, "timed steps per phase, at least")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--warmup", args->options.warmup_steps, "untimed steps before each phase")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--profile", args->options.profile_path,
                  "write a Chrome trace of 3 extra training steps (bench/profile_summary.py "
                  "sums it by op)");
  cmd->add_flag("--json", args->json,
                "print {\"train_samples_per_s\":..,\"eval_samples_per_s\":..,"
                "\"model_gflop_per_sample\":..,\"gflop_per_s\":..,...}");
  cmd->callback([args] {
    const Config config = load_config(args->config_file, args->overrides);
    const BenchResult r = run_bench(config, args->options);
    if (args->json) {
      fmt::print("{}\n", bench_json(config, r));
      return;
    }
    fmt::print(
        "pe={} threads={} attention={}\n"
        "train: {:.1f} samples/s  {:.1f} GFLOP/s ({:.3f} GFLOP per sample forward, x3 per step)\n"
        "eval:  {:.1f} samples/s  {:.1f} GFLOP/s\n"
        "1024^3 matmul: {:.1f} GFLOP/s; training reaches {:.0f}% of it\n",
        config.model.pe, r.threads, r.attention, r.train_samples_per_s, r.gflop_per_s,
        r.model_gflop_per_sample, r.eval_samples_per_s, r.eval_gflop_per_s, r.matmul_gflop_per_s,
        100.0 * r.gflop_per_s / r.matmul_gflop_per_s);
  });
}

}  // namespace pelab::cli
