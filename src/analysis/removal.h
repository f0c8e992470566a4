// Positional-component removal (the study's fourth ablation, PAPER.md section 6): for a model
// with an absolute PE, subtract the positional vector p_i from the activations entering layer l
// (the residual stream and, when keys/values come from the embeddings, those embeddings too, for
// layer l and every layer above it) and measure accuracy; compare with subtracting random vectors
// r_i of the same norm, ||r_i|| = ||p_i||, uniformly random directions, over several draws.
// All 1 + draws variants of a layer run as one batch branching off the intact residual stream.
#pragma once

#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "model/transformer.h"
#include "tasks/task.h"

namespace pelab {

struct LayerRemoval {
  int64_t layer = 0;
  double accuracy_without_position = 0;
  std::vector<double> accuracy_without_random;  // one per draw
  double random_mean = 0, random_std = 0;       // over the draws (std with n - 1; 0 for 1 draw)
};

struct RemovalResult {
  int64_t samples = 0;
  double baseline_accuracy = 0;
  std::vector<LayerRemoval> layers;
};

// Throws ConfigError when the model's PE adds no absolute vector (names the accepted PEs).
// samples_done (optional) is called after each batch with the samples finished so far.
RemovalResult remove_positional_component(Transformer& model, const Dataset& data, int64_t draws,
                                          uint64_t seed, int64_t batch_size,
                                          const std::function<void(int64_t)>& samples_done = {});
nlohmann::json removal_to_json(const RemovalResult& result, const std::string& split);

}  // namespace pelab
