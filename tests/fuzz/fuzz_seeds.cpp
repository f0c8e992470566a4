// Writes the seed inputs of corpus/checkpoint and corpus/safetensors with pelab's own writers:
// a checkpoint of a tiny model after one AdamW step (so it holds optimiser moments), its metric
// history, and the model exported as safetensors the way `pelab export` writes it.
// Usage: fuzz_seeds OUT_DIR
#include <cstdio>
#include <filesystem>
#include <map>

#include "train/checkpoint.h"
#include "train/safetensors.h"

int main(int argc, char** argv) {
  using namespace pelab;
  if (argc != 2) {
    std::fprintf(stderr, "usage: fuzz_seeds OUT_DIR\n");
    return 2;
  }
  const std::filesystem::path out = argv[1];
  std::filesystem::create_directories(out);
  const Config config = load_config(
      std::filesystem::path(PELAB_SOURCE_DIR) / "configs/tiny.toml",
      {"model.d_model=8", "model.n_heads=2", "model.n_layers=1", "model.d_ff=8",
       "task.vocab_size=16", "task.seq_len=16", "task.distance_between_max=6", "train.threads=1"});
  TrainState state = fresh_state(config);
  const auto tokens = torch::randint(1, 16, {4, 16}, torch::kLong);
  const auto lengths = torch::full({4}, 16, torch::kLong);
  const auto labels = torch::randint(0, num_classes(config.task), {4}, torch::kLong);
  state.optimizer->zero_grad();
  torch::nn::functional::cross_entropy(state.model->forward(tokens, lengths), labels).backward();
  state.optimizer->step();
  state.epochs_done = 1;
  state.steps_done = 1;
  EpochMetrics epoch;
  epoch.epoch = 1;
  epoch.train_loss = 2.0;
  epoch.test_loss = 2.1;
  epoch.train_accuracy = 0.25;
  epoch.test_accuracy = 0.125;
  epoch.lr = 1e-3;
  epoch.seconds = 0.5;
  epoch.train_samples_per_s = 8;
  state.history = {epoch};
  save_checkpoint(state, out / "tiny.pt");
  write_file_atomically(out / "metrics.json", metrics_to_json(state.history));
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  for (const auto& p : state.model->named_parameters()) tensors.emplace_back(p.key(), p.value());
  for (const auto& b : state.model->named_buffers()) tensors.emplace_back(b.key(), b.value());
  write_safetensors(out / "tiny.safetensors", tensors,
                    {{"format", "pelab"},
                     {"pe", config.model.pe},
                     {"epochs_done", "1"},
                     {"config_toml", to_toml(config)}});
  std::printf("wrote tiny.pt, metrics.json and tiny.safetensors to %s\n", out.c_str());
  return 0;
}
