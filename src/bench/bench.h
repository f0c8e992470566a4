// Throughput of a configuration's model on this machine: training steps (forward, backward,
// AdamW) and evaluation batches per second after a warm-up, the model's FLOPs, and the
// machine's GEMM rates as the yardstick (docs/PERFORMANCE.md): a 1024^3 float32 product through
// oneDNN (the fastest float32 GEMM here), the same in bf16, and through LibTorch's torch::mm
// (OpenBLAS) for comparison.
#pragma once

#include <string>

#include "config/config.h"

namespace pelab {

struct BenchOptions {
  int64_t warmup_steps = 2;  // untimed steps before each timed phase
  int64_t min_steps = 3;     // timed steps at least ...
  double min_seconds = 8.0;  // ... and at least this long, per phase
  bool train = true;         // time training steps
  bool eval = true;          // time evaluation batches
  bool matmul = true;        // time the 1024^3 product
  std::string profile_path;  // when set: a Chrome trace of 3 more training steps, by op (of
                             // 3 evaluation batches when train is off)
};

struct BenchResult {
  double train_samples_per_s = 0;
  double eval_samples_per_s = 0;
  double model_gflop_per_sample = 0;  // one forward pass; a training step counts 3x
  double gflop_per_s = 0;             // training: 3 x forward FLOPs x train samples/s
  double eval_gflop_per_s = 0;
  double matmul_gflop_per_s = 0;           // 1024^3 float32, the fastest GEMM: oneDNN when
                                           // this build has it, else torch::mm
  double matmul_bf16_gflop_per_s = 0;      // 1024^3 bf16 through oneDNN (0: unavailable)
  double openblas_matmul_gflop_per_s = 0;  // 1024^3 float32 through torch::mm (OpenBLAS)
  int64_t threads = 0;
  // Threads pelab's own kernels' loops reach (parallel_for_threads(): 1 if built without OpenMP).
  int64_t parallel_threads = 0;
  std::string attention;  // "fused (avx512)", "explicit", ...
  std::string linear;     // "oneDNN", "at::linear"
  std::string precision;  // train.precision
  std::string allocator;  // keep_freed_memory_for_reuse(): "reuse", "user" or "default"
};

// Forward FLOPs of one sample (multiply-adds count 2; dense: masked keys are counted too).
double model_forward_flops(const Config& config);

BenchResult run_bench(const Config& config, const BenchOptions& options);

std::string bench_json(const Config& config, const BenchResult& result);

}  // namespace pelab
