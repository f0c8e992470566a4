// Training and evaluation. The trainer reads a Config, generates the task, and trains with AdamW
// and a warm-up + cosine schedule stepped per batch, evaluating on the test split every epoch and
// checkpointing the run folder atomically after each epoch.
#pragma once

#include <filesystem>
#include <functional>
#include <optional>

#include "tasks/task.h"
#include "train/checkpoint.h"

namespace pelab {

struct EvalResult {
  double loss = 0;
  double accuracy = 0;
  int64_t samples = 0;
};

// Eval mode, no gradients; restores the model's previous mode.
EvalResult evaluate(Transformer& model, const Dataset& data, int64_t batch_size);

// Sets LibTorch's intra-op threads (0 = all cores).
void configure_threads(int64_t threads);
// How many threads pelab's own at::parallel_for loops (fused attention, RoPE, dropout, AdamW,
// bf16 conversion) really run on: at::get_num_threads() when the library was compiled with
// OpenMP; 1 when it was not, because at::parallel_for is a header template that then runs the
// whole range on the calling thread (a silent loss pelab once had: CMakeLists.txt).
int64_t parallel_for_threads();

// The train/test split a configuration describes (regenerated deterministically).
DatasetSplit make_split(const TaskConfig& task);
// "train", "test" or "all" (train followed by test), as the CLI's --split names them.
Dataset select_split(const DatasetSplit& split, const std::string& name);
// The residual stream of one evaluation batch, [batch, seq_len, d_model] float32, stays within
// this many bytes when train.eval_batch_size is 0 (auto): evaluation has no backward to keep
// them for, and each element-wise pass (LayerNorm, residual add, bf16 copy) then runs from the
// core's L2 cache instead of memory (docs/PERFORMANCE.md measures it).
constexpr int64_t kEvalActivationBytes = int64_t(1) << 20;
// train.eval_batch_size when set; else (0, auto) train.batch_size, lowered as far as needed to
// keep one batch's activations within kEvalActivationBytes (at least 1). Per-sample outputs do not
// depend on the batch size beyond float rounding: accuracies agree, losses to about 1e-7.
int64_t eval_batch_size(const Config& config);

struct TrainOptions {
  bool progress = true;  // progress line on stderr
  bool quiet = false;    // no per-epoch lines on stdout
  // Stop after this many epochs in this call (0 = run to train.epochs); used to test resume.
  int64_t max_epochs_this_call = 0;
  // Replaces the config's train.checkpoint_every_s when set (pelab train --resume DIR
  // train.checkpoint_every_s=S); it does not change the numbers.
  std::optional<double> checkpoint_every_s;
  // Called after each epoch's evaluation; its result is stored as the epoch's "analysis" in
  // metrics.json. Must leave the model's mode, its gradients and the global RNG as it found them
  // (so tracking does not change the training run). The CLI sets it when train.track_spectra.
  std::function<nlohmann::json(Transformer&, const DatasetSplit&, const Config&)> epoch_probe;
};

// Trains `state` on `data` (the split its config describes) from its epochs_done (and the step
// inside the next epoch) to config.train.epochs, checkpointing into run_dir after every epoch and
// every train.checkpoint_every_s. SIGTERM/SIGINT: checkpoint, then TrainingInterrupted
// (train/interrupt.h).
void train(TrainState& state, const DatasetSplit& data, const std::filesystem::path& run_dir,
           const TrainOptions& options);

// Checks that the task can be generated, then creates run_dir (refusing one that already holds a
// checkpoint), writes config.toml and trains. Bad input leaves no run folder behind.
void train_new_run(const Config& config, const std::filesystem::path& run_dir,
                   const TrainOptions& options);
// Loads run_dir's checkpoint and continues to train.epochs; a folder with a config.toml but no
// checkpoint yet (killed before its first) starts from step 0 with that config.
void resume_run(const std::filesystem::path& run_dir, const TrainOptions& options,
                int64_t new_total_epochs = 0);

}  // namespace pelab
