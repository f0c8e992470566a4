#include "train/trainer.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <random>
#include <thread>
#include <vector>

#include "kernels/onednn_linear.h"
#include "train/early_stopping.h"
#include "train/interrupt.h"
#include "train/schedule.h"

namespace pelab {
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

void configure_threads(int64_t threads) {
  int64_t n = threads > 0 ? threads : std::max(1u, std::thread::hardware_concurrency());
  torch::set_num_threads(static_cast<int>(n));
}

int64_t parallel_for_threads() {
  const int64_t threads = at::get_num_threads();
  std::vector<std::atomic<bool>> seen(threads);
  // One index per thread (grain 1): each thread of the pool marks its own number.
  at::parallel_for(0, threads, 1, [&](int64_t, int64_t) { seen[at::get_thread_num()] = true; });
  return std::count_if(seen.begin(), seen.end(),
                       [](const std::atomic<bool>& s) { return s.load(); });
}

DatasetSplit make_split(const TaskConfig& task) { return split_dataset(generate_task(task), task); }

Dataset select_split(const DatasetSplit& split, const std::string& name) {
  if (name == "train") return split.train;
  if (name == "test") return split.test;
  TORCH_CHECK(name == "all", "unknown split '", name, "'; accepted: train, test, all");
  return Dataset{torch::cat({split.train.tokens, split.test.tokens}),
                 torch::cat({split.train.lengths, split.test.lengths}),
                 torch::cat({split.train.labels, split.test.labels})};
}

int64_t eval_batch_size(const Config& config) {
  const TrainConfig& train = config.train;
  if (train.eval_batch_size > 0) return train.eval_batch_size;
  const int64_t sample_bytes = std::max<int64_t>(1, config.task.seq_len * config.model.d_model) * 4;
  return std::clamp<int64_t>(kEvalActivationBytes / sample_bytes, 1, train.batch_size);
}

EvalResult evaluate(Transformer& model, const Dataset& data, int64_t batch_size) {
  const bool was_training = model->is_training();
  model->eval();
  torch::NoGradGuard no_grad;
  const PackedWeightsScope packed_weights;  // the weights stay as they are for the whole pass
  double loss_sum = 0;
  int64_t correct = 0;
  const int64_t n = data.size();
  for (int64_t start = 0; start < n; start += batch_size) {
    const int64_t end = std::min(n, start + batch_size);
    auto logits =
        model->forward(data.tokens.slice(0, start, end), data.lengths.slice(0, start, end));
    auto labels = data.labels.slice(0, start, end);
    loss_sum +=
        torch::nn::functional::cross_entropy(
            logits, labels, torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum))
            .item<double>();
    correct += logits.argmax(1).eq(labels).sum().item<int64_t>();
  }
  model->train(was_training);
  EvalResult r;
  r.samples = n;
  r.loss = n ? loss_sum / double(n) : 0.0;
  r.accuracy = n ? double(correct) / double(n) : 0.0;
  return r;
}

namespace {

std::string format_duration(double seconds) {
  const auto s = static_cast<int64_t>(seconds + 0.5);
  return fmt::format("{}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60);
}

// The order of training samples in an epoch: a pure function of (seed, epoch), so a resumed run
// visits batches exactly as an uninterrupted one.
torch::Tensor epoch_order(int64_t n, int64_t seed, int64_t epoch) {
  std::mt19937_64 rng(static_cast<uint64_t>(seed) * 0x9E3779B97F4A7C15ULL +
                      static_cast<uint64_t>(epoch));
  std::vector<int64_t> order(n);
  for (int64_t i = 0; i < n; ++i) order[i] = i;
  for (int64_t i = n - 1; i > 0; --i) {
    // Unbiased bounded draw (rejection), portable across standard libraries.
    const uint64_t bound = static_cast<uint64_t>(i + 1);
    const uint64_t limit = UINT64_MAX - UINT64_MAX % bound;
    uint64_t r;
    do r = rng();
    while (r >= limit);
    std::swap(order[i], order[static_cast<int64_t>(r % bound)]);
  }
  return torch::tensor(order, torch::kLong);
}

void set_lr(torch::optim::Optimizer& optimizer, double lr) {
  for (auto& group : optimizer.param_groups())
    static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
}

class ProgressLine {
 public:
  explicit ProgressLine(bool enabled) : enabled_(enabled), tty_(isatty(fileno(stderr))) {}
  void update(const std::string& text) {
    if (!enabled_) return;
    const auto now = Clock::now();
    const double since = std::chrono::duration<double>(now - last_).count();
    if (since < (tty_ ? 0.25 : 15.0)) return;
    last_ = now;
    if (tty_) {
      fmt::print(stderr, "\r\x1b[2K{}", text);
    } else {
      fmt::print(stderr, "{}\n", text);
    }
    std::fflush(stderr);
  }
  void clear() {
    if (enabled_ && tty_) fmt::print(stderr, "\r\x1b[2K");
  }

 private:
  bool enabled_, tty_;
  Clock::time_point last_ = Clock::now();
};

}  // namespace

void train(TrainState& state, const DatasetSplit& split, const fs::path& run_dir,
           const TrainOptions& options) {
  const Config& config = state.config;
  const auto& t = config.train;
  configure_threads(t.threads);
  // train.precision; refused without bf16
  const Bf16ProductsGuard precision(t.precision == "bf16");
  const TrainingSets sets = training_sets(split.train, config);
  const int64_t n_train = sets.fit.size();
  const int64_t steps_per_epoch = (n_train + t.batch_size - 1) / t.batch_size;
  const LrSchedule schedule = make_schedule(t.lr, steps_per_epoch * t.epochs, t.warmup_fraction);
  const int64_t eval_batch = eval_batch_size(config);
  Transformer& model = state.model;
  auto& optimizer = *state.optimizer;
  ProgressLine progress(options.progress);
  const auto run_start = Clock::now();
  const int64_t first_epoch = state.epochs_done;
  int64_t epochs_this_call = 0;
  InterruptScope interrupt_scope;  // SIGTERM/SIGINT: checkpoint at the next step, then stop
  CheckpointClock checkpoint_clock(options.checkpoint_every_s.value_or(t.checkpoint_every_s));

  while (state.epochs_done < t.epochs && !training_finished(state.history, t) &&
         (options.max_epochs_this_call == 0 || epochs_this_call < options.max_epochs_this_call)) {
    const int64_t epoch = state.epochs_done + 1;
    const auto epoch_start = Clock::now();
    model->train();
    const torch::Tensor order = epoch_order(n_train, t.seed, epoch);
    // A checkpoint from inside this epoch continues at its step with its running sums.
    EpochProgress& progress_sums = state.epoch_progress;
    if (progress_sums.step >= steps_per_epoch)
      throw CheckpointError(
          fmt::format("checkpoint in '{}' is at step {} of an epoch of {} steps; accepted: fewer",
                      run_dir.string(), progress_sums.step, steps_per_epoch));
    double loss_sum = progress_sums.loss_sum;
    int64_t correct = progress_sums.correct, seen = progress_sums.seen;
    const double earlier_train_seconds = progress_sums.train_seconds;
    const int64_t seen_before = seen;
    double lr = 0;
    for (int64_t b = progress_sums.step; b < steps_per_epoch; ++b) {
      auto rows = order.slice(0, b * t.batch_size, std::min(n_train, (b + 1) * t.batch_size));
      const Dataset batch = sets.fit.index(rows);
      lr = schedule.at(state.steps_done);
      set_lr(optimizer, lr);
      optimizer.zero_grad();
      auto logits = model->forward(batch.tokens, batch.lengths);
      auto loss = torch::nn::functional::cross_entropy(logits, batch.labels);
      loss.backward();
      if (t.grad_clip > 0) torch::nn::utils::clip_grad_norm_(model->parameters(), t.grad_clip);
      optimizer.step();
      ++state.steps_done;
      test_pause("TRAIN_STEP");
      const int64_t bs = batch.size();
      loss_sum += loss.item<double>() * double(bs);
      correct += logits.argmax(1).eq(batch.labels).sum().item<int64_t>();
      seen += bs;
      const double elapsed = std::chrono::duration<double>(Clock::now() - epoch_start).count();
      progress_sums = {b + 1, loss_sum, correct, seen, earlier_train_seconds + elapsed};
      if (b + 1 < steps_per_epoch && (interrupt_signal() != 0 || checkpoint_clock.due())) {
        save_checkpoint(state, checkpoint_path(run_dir));
        checkpoint_clock.restart();
        if (interrupt_signal() != 0) {
          progress.clear();
          throw TrainingInterrupted(interrupt_signal(), run_dir);
        }
      }
      const double rate = double(seen - seen_before) / std::max(elapsed, 1e-9);
      const double remaining_samples =
          double(n_train - seen) + double(n_train) * double(t.epochs - epoch);
      progress.update(fmt::format("epoch {}/{} step {}/{} loss {:.4f} | {:.0f} samples/s | ETA {}",
                                  epoch, t.epochs, b + 1, steps_per_epoch, loss_sum / double(seen),
                                  rate, format_duration(remaining_samples / rate)));
    }
    const double train_seconds =
        earlier_train_seconds + std::chrono::duration<double>(Clock::now() - epoch_start).count();
    const EvalResult test = evaluate(model, split.test, eval_batch);
    EpochMetrics m;
    m.epoch = epoch;
    m.train_loss = loss_sum / double(std::max<int64_t>(seen, 1));
    m.train_accuracy = double(correct) / double(std::max<int64_t>(seen, 1));
    m.test_loss = test.loss;
    m.test_accuracy = test.accuracy;
    if (sets.validation.size() > 0) {
      const EvalResult validation = evaluate(model, sets.validation, eval_batch);
      m.validation_loss = validation.loss;
      m.validation_accuracy = validation.accuracy;
    }
    m.lr = lr;
    m.seconds =
        earlier_train_seconds + std::chrono::duration<double>(Clock::now() - epoch_start).count();
    m.train_samples_per_s = double(seen) / std::max(train_seconds, 1e-9);
    if (options.epoch_probe) m.analysis = options.epoch_probe(model, split, config);
    state.history.push_back(m);
    state.epochs_done = epoch;
    state.epoch_progress = {};
    ++epochs_this_call;
    note_stopping_state(state, run_dir);
    save_checkpoint(state, checkpoint_path(run_dir));
    checkpoint_clock.restart();
    write_file_atomically(run_dir / "metrics.json", metrics_to_json(state.history));
    progress.clear();
    if (!options.quiet) {
      const double run_elapsed = std::chrono::duration<double>(Clock::now() - run_start).count();
      const double eta = run_elapsed / double(epoch - first_epoch) * double(t.epochs - epoch);
      fmt::print(
          "epoch {:>3}/{}  train_loss {:.4f}  train_acc {:.4f}  test_loss {:.4f}  "
          "test_acc {:.4f}  lr {:.2e}  {:.0f} samples/s  ETA {}{}\n",
          epoch, t.epochs, m.train_loss, m.train_accuracy, m.test_loss, m.test_accuracy, m.lr,
          m.train_samples_per_s, format_duration(eta),
          stopping_summary(state.history.back()));  // m is the copy before the stopping state
      std::fflush(stdout);
    }
    if (interrupt_signal() != 0 && state.epochs_done < t.epochs)
      throw TrainingInterrupted(interrupt_signal(), run_dir);
  }
}

void train_new_run(const Config& config, const fs::path& run_dir, const TrainOptions& options) {
  if (fs::exists(checkpoint_path(run_dir)))
    throw CheckpointError(fmt::format(
        "'{}' already holds a run; continue it with `pelab train --resume {}` or choose another "
        "--out folder",
        run_dir.string(), run_dir.string()));
  { const Bf16ProductsGuard refuse_early(config.train.precision == "bf16"); }  // before any file
  const DatasetSplit split = make_split(config.task);
  TrainState state = fresh_state(config);
  fs::create_directories(run_dir);
  write_file_atomically(run_dir / "config.toml", to_toml(config));
  train(state, split, run_dir, options);
}

namespace {

// A run folder killed before its first checkpoint holds only config.toml: it starts from step 0
// with that config, exactly as train_new_run would have continued.
TrainState load_or_start(const fs::path& run_dir, DatasetSplit& split) {
  const fs::path config_file = run_dir / "config.toml";
  if (!fs::exists(checkpoint_path(run_dir)) && fs::exists(config_file)) {
    const Config config = load_config(config_file, {});
    split = make_split(config.task);
    return fresh_state(config);
  }
  TrainState state = load_checkpoint(checkpoint_path(run_dir));
  split = make_split(state.config.task);
  return state;
}

}  // namespace

void resume_run(const fs::path& run_dir, const TrainOptions& options, int64_t new_total_epochs) {
  DatasetSplit split;
  TrainState state = load_or_start(run_dir, split);
  if (new_total_epochs > 0) {
    if (new_total_epochs < state.epochs_done)
      throw ConfigError(
          fmt::format("train.epochs: bad value {}; the run already has {} epochs; accepted: >= {}",
                      new_total_epochs, state.epochs_done, state.epochs_done));
    state.config.train.epochs = new_total_epochs;
    if (!state.history.empty() && state.history.back().stop_reason == "ceiling" &&
        new_total_epochs > state.epochs_done)
      state.history.back().stop_reason.clear();  // the ceiling moved: training continues
    write_file_atomically(run_dir / "config.toml", to_toml(state.config));
  }
  train(state, split, run_dir, options);
}

}  // namespace pelab
