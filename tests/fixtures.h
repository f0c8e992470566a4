// Shared test fixtures: briefly trained tiny models, so that heads and terms matter unequally.
#pragma once

#include <string>
#include <vector>

#include "train/trainer.h"

namespace pelab::test_fixtures {

// A two-layer, two-head model small enough to compare paths on every PE x mask in milliseconds
// (MLA sized to match); no dropout, so two paths see the same numbers.
inline ModelConfig small_model_config(const std::string& pe, const std::string& mask) {
  ModelConfig m;
  m.pe = pe;
  m.d_model = 32;
  m.n_heads = 2;
  m.n_layers = 2;
  m.d_ff = 40;
  m.dropout = 0;
  m.attention_dropout = 0;
  m.mask = mask;
  m.mla_kv_latent = 12;
  m.mla_q_latent = 10;
  m.mla_rope_dim = 6;
  return m;
}

struct TrainedModel {
  Config config;
  Transformer model{nullptr};
  Dataset data;
};

// configs/tiny.toml with model.pe = pe and the extra overrides, `steps` full-batch AdamW steps on
// 96 samples (a fraction of a second for the default 30).
inline TrainedModel briefly_trained(const std::string& pe,
                                    const std::vector<std::string>& overrides = {},
                                    int steps = 30) {
  std::vector<std::string> all{"model.pe=" + pe, "task.samples=96", "train.threads=1"};
  all.insert(all.end(), overrides.begin(), overrides.end());
  Config config = load_config(std::string(PELAB_SOURCE_DIR) + "/configs/tiny.toml", all);
  configure_threads(1);
  TrainState state = fresh_state(config);
  Dataset data = generate_task(config.task);
  for (int step = 0; step < steps; ++step) {
    state.optimizer->zero_grad();
    torch::nn::functional::cross_entropy(state.model->forward(data.tokens, data.lengths),
                                         data.labels)
        .backward();
    state.optimizer->step();
  }
  return {config, state.model, data};
}

}  // namespace pelab::test_fixtures
