#include <fmt/format.h>

#include <algorithm>

#include "bench/bench.h"
#include "bench/gemm_rates.h"
#include "cli/commands.h"
#include "train/trainer.h"

namespace pelab::cli {

void add_bench(CLI::App& app) {
  struct Args {
    std::string config_file;
    std::vector<std::string> overrides;
    BenchOptions options;
    bool json = false;
    bool gemm = false;
    std::vector<std::string> phases;
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
                  "write a Chrome trace of 3 extra training steps, or evaluation batches with "
                  "--phases eval (bench/profile_summary.py sums it by op)");
  cmd->add_option("--phases", args->phases,
                  "time only these phases (default all): train, eval, matmul; e.g. --phases eval "
                  "for a profiler run of evaluation alone")
      ->check(CLI::IsMember({"train", "eval", "matmul"}))
      ->delimiter(',');
  cmd->add_flag("--json", args->json,
                "print {\"train_samples_per_s\":..,\"eval_samples_per_s\":..,"
                "\"model_gflop_per_sample\":..,\"gflop_per_s\":..,...}");
  cmd->add_flag("--gemm", args->gemm,
                "instead: GEMM rates of at::linear, at::mkldnn_linear and oneDNN (fp32, bf16) on "
                "a training step's shapes, best of 3 alternating rounds of --seconds/10 each");
  cmd->callback([args] {
    if (args->gemm) {
      const Config config = load_config(args->config_file, args->overrides);
      configure_threads(config.train.threads);
      fmt::print("threads={}\n{:<24} {:<20} {:>10}\n", torch::get_num_threads(), "product",
                 "method", "GFLOP/s");
      for (const auto& r : gemm_rates(args->options.min_seconds / 10, 3))
        fmt::print("{:<24} {:<20} {:>10.1f}\n", r.product, r.method, r.gflop_per_s);
      return;
    }
    const Config config = load_config(args->config_file, args->overrides);
    BenchOptions options = args->options;
    if (!args->phases.empty()) {
      auto chosen = [&](const char* phase) {
        return std::find(args->phases.begin(), args->phases.end(), phase) != args->phases.end();
      };
      options.train = chosen("train");
      options.eval = chosen("eval");
      options.matmul = chosen("matmul");
    }
    const BenchResult r = run_bench(config, options);
    if (args->json) {
      fmt::print("{}\n", bench_json(config, r));
      return;
    }
    fmt::print(
        "pe={} threads={} (pelab's loops: {}) attention={} linear={} precision={} malloc={}\n",
        config.model.pe, r.threads, r.parallel_threads, r.attention, r.linear, r.precision,
        r.allocator);
    if (options.train)
      fmt::print(
          "train: {:.1f} samples/s  {:.1f} GFLOP/s ({:.3f} GFLOP per sample forward, x3 per "
          "step)\n",
          r.train_samples_per_s, r.gflop_per_s, r.model_gflop_per_sample);
    if (options.eval)
      fmt::print("eval:  {:.1f} samples/s  {:.1f} GFLOP/s\n", r.eval_samples_per_s,
                 r.eval_gflop_per_s);
    if (options.matmul)
      fmt::print(
          "1024^3 matmul: {:.1f} GFLOP/s float32 (fastest GEMM; OpenBLAS {:.1f}), {:.1f} bf16{}\n",
          r.matmul_gflop_per_s, r.openblas_matmul_gflop_per_s, r.matmul_bf16_gflop_per_s,
          options.train ? fmt::format("; training reaches {:.0f}% of the float32 rate",
                                      100.0 * r.gflop_per_s / r.matmul_gflop_per_s)
                        : std::string());
  });
}

}  // namespace pelab::cli
