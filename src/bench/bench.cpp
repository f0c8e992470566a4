#include "bench/bench.h"

#include <fmt/format.h>

#include <chrono>
#include <nlohmann/json.hpp>

#include "bench/gemm_rates.h"
#include "kernels/fused_attention.h"
#include "kernels/onednn_linear.h"
#include "train/allocator.h"
#include "train/trainer.h"

namespace pelab {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Runs `step` (which returns the samples it processed) `warmup` times untimed, then until both
// min_steps and min_seconds are reached; returns samples per second.
template <typename Step>
double samples_per_second(const BenchOptions& options, const Step& step) {
  for (int64_t i = 0; i < options.warmup_steps; ++i) step(i);
  const auto start = Clock::now();
  int64_t samples = 0, steps = 0;
  while (steps < options.min_steps || seconds_since(start) < options.min_seconds)
    samples += step(options.warmup_steps + steps++);
  return double(samples) / seconds_since(start);
}

double matmul_gflop_per_s(const BenchOptions& options) {
  const int64_t n = 1024;
  auto a = torch::randn({n, n}), b = torch::randn({n, n}), c = torch::empty({n, n});
  for (int i = 0; i < 3; ++i) torch::mm_out(c, a, b);
  const auto start = Clock::now();
  int64_t products = 0;
  while (products < 10 || seconds_since(start) < std::min(2.0, options.min_seconds)) {
    torch::mm_out(c, a, b);
    ++products;
  }
  return 2.0 * double(n * n * n) * double(products) / seconds_since(start) / 1e9;
}

}  // namespace

double model_forward_flops(const Config& config) {
  const ModelConfig& m = config.model;
  const double L = double(config.task.seq_len), d = double(m.d_model), H = double(m.n_heads);
  const double head_dim = double(m.d_model / m.n_heads);
  auto linear = [&](double in, double out) { return 2.0 * L * in * out; };
  double per_layer = linear(d, m.d_ff) + linear(m.d_ff, d);
  if (m.pe == "mla") {
    const double inner = H * head_dim, rope = double(m.mla_rope_dim);
    const double c = double(m.mla_kv_latent);
    const double query_in = m.mla_q_latent > 0 ? double(m.mla_q_latent) : d;
    per_layer += linear(d, c) + 2 * linear(c, inner) + linear(d, rope);
    if (m.mla_q_latent > 0) per_layer += linear(d, query_in);
    per_layer += linear(query_in, inner) +
                 linear(query_in, (m.mla_shared_rotary_query ? 1.0 : H) * rope) + linear(inner, d);
    per_layer += 2.0 * H * L * L * (head_dim + rope) + 2.0 * H * L * L * head_dim;
  } else {
    per_layer += 4 * linear(d, d) + 2 * (2.0 * H * L * L * head_dim);
  }
  return double(m.n_layers) * per_layer + 2.0 * d * double(num_classes(config.task));
}

BenchResult run_bench(const Config& config, const BenchOptions& options) {
  configure_threads(config.train.threads);
  const Bf16ProductsGuard precision(config.train.precision == "bf16");
  BenchResult result;
  result.linear =
      config.model.onednn_linear && onednn_available() ? "oneDNN" : std::string("at::linear");
  result.precision = config.train.precision;
  result.allocator = keep_freed_memory_for_reuse();
  result.threads = torch::get_num_threads();
  result.parallel_threads = parallel_for_threads();
  result.attention = config.model.fused_attention ? fmt::format("fused ({})", fused_attention_isa())
                                                  : std::string("explicit");
  result.model_gflop_per_sample = model_forward_flops(config) / 1e9;
  const Dataset data = generate_task(config.task);
  auto batch_at = [&](int64_t step, int64_t batch_size) {
    const int64_t n = data.size();
    auto rows = torch::arange(step * batch_size, (step + 1) * batch_size, torch::kLong) % n;
    return data.index(rows);
  };

  if (options.train) {
    TrainState state = fresh_state(config);
    state.model->train();
    auto train_step = [&](int64_t step) {
      const Dataset batch = batch_at(step, config.train.batch_size);
      state.optimizer->zero_grad();
      auto logits = state.model->forward(batch.tokens, batch.lengths);
      auto loss = torch::nn::functional::cross_entropy(logits, batch.labels);
      loss.backward();
      if (config.train.grad_clip > 0)
        torch::nn::utils::clip_grad_norm_(state.model->parameters(), config.train.grad_clip);
      state.optimizer->step();
      loss.item<double>();  // as the trainer does: the step is complete when the loss is read
      return batch.size();
    };
    result.train_samples_per_s = samples_per_second(options, train_step);
    if (!options.profile_path.empty()) {
      torch::autograd::profiler::RecordProfile profile(options.profile_path);
      for (int64_t i = 0; i < 3; ++i) train_step(i);
    }
    result.gflop_per_s = 3.0 * result.model_gflop_per_sample * result.train_samples_per_s;
  }
  if (options.eval) {
    Transformer model = build_model(config);
    model->eval();
    torch::NoGradGuard no_grad;
    const PackedWeightsScope packed_weights;  // as evaluate() runs
    const int64_t batch_size = eval_batch_size(config);
    auto eval_step = [&](int64_t step) {
      const Dataset batch = batch_at(step, batch_size);
      auto logits = model->forward(batch.tokens, batch.lengths);
      logits.argmax(1).eq(batch.labels).sum().item<int64_t>();
      return batch.size();
    };
    result.eval_samples_per_s = samples_per_second(options, eval_step);
    if (!options.profile_path.empty() && !options.train) {
      torch::autograd::profiler::RecordProfile profile(options.profile_path);
      for (int64_t i = 0; i < 3; ++i) eval_step(i);
    }
    result.eval_gflop_per_s = result.model_gflop_per_sample * result.eval_samples_per_s;
  }
  if (options.matmul) {
    const double seconds = std::min(2.0, options.min_seconds);
    result.openblas_matmul_gflop_per_s = matmul_gflop_per_s(options);
    result.matmul_gflop_per_s = onednn_available() ? onednn_matmul_gflop_per_s(false, seconds)
                                                   : result.openblas_matmul_gflop_per_s;
    result.matmul_bf16_gflop_per_s = onednn_matmul_gflop_per_s(true, seconds);
  }
  return result;
}

std::string bench_json(const Config& config, const BenchResult& r) {
  nlohmann::json j = {{"train_samples_per_s", r.train_samples_per_s},
                      {"eval_samples_per_s", r.eval_samples_per_s},
                      {"model_gflop_per_sample", r.model_gflop_per_sample},
                      {"gflop_per_s", r.gflop_per_s},
                      {"eval_gflop_per_s", r.eval_gflop_per_s},
                      {"matmul_gflop_per_s", r.matmul_gflop_per_s},
                      {"matmul_bf16_gflop_per_s", r.matmul_bf16_gflop_per_s},
                      {"openblas_matmul_gflop_per_s", r.openblas_matmul_gflop_per_s},
                      {"linear", r.linear},
                      {"precision", r.precision},
                      {"allocator", r.allocator},
                      {"pe", config.model.pe},
                      {"threads", r.threads},
                      {"parallel_threads", r.parallel_threads},
                      {"attention", r.attention},
                      {"implementation", "pelab"}};
  return j.dump();
}

}  // namespace pelab
