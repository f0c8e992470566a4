// Evaluation-time config overrides: `pelab eval RUN key=value ...` may change only the keys that
// alter how positions are encoded without touching trained weights (RoPE context scaling).
#pragma once

#include <string>
#include <vector>

#include "config/config.h"
#include "model/transformer.h"

namespace pelab {

// The keys accepted at evaluation: model.rope_scaling, model.rope_scaling_factor,
// model.rope_original_length.
const std::vector<std::string>& eval_override_keys();

// The trained run's config with the overrides applied and validated. Throws ConfigError naming a
// key that is not an evaluation-time key (and listing those that are), or a bad value. With YaRN
// and no model.rope_original_length, the training context task.seq_len is recorded as L_orig.
Config config_with_eval_overrides(const Config& trained, const std::vector<std::string>& overrides);

// A model built from `config` carrying `trained`'s parameters and buffers (the overrides add or
// remove none). Throws ConfigError if a tensor has no counterpart.
Transformer rebuild_model(const Transformer& trained, const Config& config);

}  // namespace pelab
