#include "train/eval_overrides.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>

namespace pelab {

const std::vector<std::string>& eval_override_keys() {
  static const std::vector<std::string> keys = {"model.rope_scaling", "model.rope_scaling_factor",
                                                "model.rope_original_length"};
  return keys;
}

Config config_with_eval_overrides(const Config& trained,
                                  const std::vector<std::string>& overrides) {
  Config config = trained;
  const auto& keys = eval_override_keys();
  for (const auto& o : overrides) {
    const auto key = o.substr(0, o.find('='));
    if (std::find(keys.begin(), keys.end(), key) == keys.end())
      throw ConfigError(fmt::format(
          "eval: '{}' cannot be overridden at evaluation (the run was trained with it); "
          "accepted: {}",
          key, fmt::join(keys, ", ")));
    apply_override(config, o);
  }
  if (config.model.rope_scaling == "yarn" && config.model.rope_original_length == 0)
    config.model.rope_original_length = trained.task.seq_len;
  validate(config);
  return config;
}

Transformer rebuild_model(const Transformer& trained, const Config& config) {
  Transformer model = build_model(config);
  torch::NoGradGuard no_grad;
  auto source = trained->named_parameters();
  for (auto& p : model->named_parameters()) {
    if (!source.contains(p.key()))
      throw ConfigError(
          fmt::format("eval: the rebuilt model has a parameter '{}' the run lacks", p.key()));
    p.value().copy_(source[p.key()]);
  }
  auto buffers = trained->named_buffers();
  for (auto& b : model->named_buffers())
    if (buffers.contains(b.key())) b.value().copy_(buffers[b.key()]);
  model->train(trained->is_training());
  return model;
}

}  // namespace pelab
