// What `train.track_spectra` records after every epoch (stored as the epoch's "analysis" in
// metrics.json): per layer, the logit matrices' singular-value statistics averaged over heads,
// and the top Hessian eigenvalue of the loss on a fixed set of test sequences. Lets the claim
// "RoPE gives better conditioned optimisation" (PAPER.md section 2) be tested over training.
#pragma once

#include <nlohmann/json.hpp>

#include "model/transformer.h"
#include "tasks/task.h"

namespace pelab {

// Uses the first train.track_samples test sequences; leaves the model's mode, its gradients and
// the global RNG untouched.
nlohmann::json training_probe(Transformer& model, const DatasetSplit& split,
                              const TrainConfig& train);

}  // namespace pelab
