// Evaluation at longer lengths: the rebuilt model, the position-table refusal or clamp, and the
// accuracy per length (the header gives the rules).
#include "analysis/length_generalization.h"

#include <fmt/format.h>

#include <cmath>
#include <map>

#include "tasks/task.h"
#include "train/eval_overrides.h"
#include "train/trainer.h"

namespace pelab {
namespace {

// old extended along `dim` to `new_size` by repeating its edge entries: at the end only (a table
// indexed by position, grown by extra) or at both ends (a table indexed by offset and centred on
// 0, grown by 2 extra).
torch::Tensor extend_by_edges(const torch::Tensor& old, int64_t dim, int64_t before,
                              int64_t after) {
  std::vector<torch::Tensor> parts;
  const int64_t n = old.size(dim);
  if (before > 0) {
    auto sizes = old.sizes().vec();
    sizes[dim] = before;
    parts.push_back(old.narrow(dim, 0, 1).expand(sizes));
  }
  parts.push_back(old);
  if (after > 0) {
    auto sizes = old.sizes().vec();
    sizes[dim] = after;
    parts.push_back(old.narrow(dim, n - 1, 1).expand(sizes));
  }
  return torch::cat(parts, dim);
}

std::string shape_text(const torch::Tensor& t) {
  std::string out = "[";
  for (int64_t d = 0; d < t.dim(); ++d) out += (d ? ", " : "") + std::to_string(t.size(d));
  return out + "]";
}

}  // namespace

Config config_at_length(const Config& run_config, const std::vector<std::string>& overrides,
                        int64_t length) {
  // Only evaluation-time keys (RoPE scaling): the trained weights fix everything else.
  Config c = overrides.empty() ? run_config : config_with_eval_overrides(run_config, overrides);
  c.task = lengthen_task(c.task, length);
  validate(c);
  return c;
}

Transformer model_at_length(Transformer& trained, const Config& config, int64_t train_length,
                            bool clamp_positions) {
  torch::NoGradGuard no_grad;
  Transformer model = build_model(config);
  const int64_t extra = config.task.seq_len - train_length;
  auto old_params = trained->named_parameters(true);
  for (auto& item : model->named_parameters(true)) {
    const std::string& name = item.key();
    torch::Tensor& target = item.value();
    const torch::Tensor* source = old_params.find(name);
    if (!source)
      throw ConfigError(fmt::format(
          "parameter {} of the evaluated model is not in the run's checkpoint: an override "
          "changed the architecture; accepted: overrides that keep the parameters",
          name));
    if (source->sizes() == target.sizes()) {
      target.copy_(*source);
      continue;
    }
    // Exactly one dimension grew with the length: a position table.
    int64_t dim = -1;
    bool other_change = source->dim() != target.dim();
    for (int64_t d = 0; !other_change && d < target.dim(); ++d) {
      if (source->size(d) == target.size(d)) continue;
      if (dim >= 0) other_change = true;
      dim = d;
    }
    const int64_t grown = dim >= 0 && !other_change ? target.size(dim) - source->size(dim) : -1;
    const bool by_position = grown == extra, by_offset = grown == 2 * extra;
    if (other_change || (!by_position && !by_offset))
      throw ConfigError(fmt::format(
          "parameter {} has shape {} in the run and {} at length {}: an override changed the "
          "architecture; accepted: overrides that keep the parameters' shapes",
          name, shape_text(*source), shape_text(target), config.task.seq_len));
    if (!clamp_positions)
      throw ConfigError(fmt::format(
          "model.pe = {}: its position table {} {} covers the training length {} only, so it "
          "cannot represent length {}; the longest length it supports is {}. Accepted: lengths "
          "<= {}, or --clamp-positions (positions beyond the table reuse its last learned entry)",
          config.model.pe, name, shape_text(*source), train_length, config.task.seq_len,
          train_length, train_length));
    target.copy_(by_position ? extend_by_edges(*source, dim, 0, extra)
                             : extend_by_edges(*source, dim, extra, extra));
  }
  // Buffers: copied when their shape is unchanged; a length-dependent one (a closed-form table)
  // keeps the value the new model computed for the longer length.
  auto old_buffers = trained->named_buffers(true);
  for (auto& item : model->named_buffers(true)) {
    const torch::Tensor* source = old_buffers.find(item.key());
    if (source && source->sizes() == item.value().sizes()) item.value().copy_(*source);
  }
  model->eval();
  return model;
}

int64_t longest_supported_length(const Config& config) {
  // Build the model at two lengths and look for parameters whose shape differs.
  Config shorter = config, longer = config;
  longer.task = lengthen_task(config.task, config.task.seq_len + 1);
  Transformer a = build_model(shorter), b = build_model(longer);
  auto pa = a->named_parameters(true);
  for (const auto& item : b->named_parameters(true)) {
    const torch::Tensor* p = pa.find(item.key());
    if (!p || p->sizes() != item.value().sizes()) return config.task.seq_len;
  }
  return -1;
}

LengthResult evaluate_lengths(TrainState& state, const LengthOptions& options) {
  if (options.lengths.empty())
    throw ConfigError("--lengths: empty; accepted: a comma-separated list of lengths");
  LengthResult result;
  result.pe = state.config.model.pe;
  result.task = state.config.task.name;
  result.split = options.split;
  result.train_length = state.config.task.seq_len;
  // Build every length's model (and hit any refusal) before evaluating, so a bad list fails at
  // once.
  std::vector<Config> configs;
  std::vector<Transformer> models;
  for (const int64_t length : options.lengths) {
    configs.push_back(config_at_length(state.config, options.overrides, length));
    models.push_back(
        model_at_length(state.model, configs.back(), result.train_length, options.clamp_positions));
  }
  const int64_t longest = longest_supported_length(state.config);
  const int64_t batch = eval_batch_size(state.config);
  for (size_t i = 0; i < configs.size(); ++i) {
    const Config& c = configs[i];
    Transformer& model = models[i];
    if (longest >= 0 && c.task.seq_len > longest) result.clamped = true;
    Dataset data = select_split(make_split(c.task), options.split);
    if (options.max_samples > 0 && data.size() > options.max_samples)
      data = data.index(torch::arange(options.max_samples, torch::kLong));
    const EvalResult r = evaluate(model, data, batch);
    result.points.push_back({c.task.seq_len, r.accuracy, r.loss, r.samples});
  }
  return result;
}

nlohmann::json length_result_to_json(const LengthResult& r) {
  nlohmann::json points = nlohmann::json::array();
  for (const auto& p : r.points)
    points.push_back({{"length", p.length},
                      {"factor", double(p.length) / double(r.train_length)},
                      {"accuracy", p.accuracy},
                      {"loss", p.loss},
                      {"samples", p.samples}});
  return {{"pe", r.pe},           {"task", r.task},
          {"split", r.split},     {"train_length", r.train_length},
          {"clamped", r.clamped}, {"points", points}};
}

LengthResult length_result_from_json(const nlohmann::json& j) {
  LengthResult r;
  r.pe = j.at("pe").get<std::string>();
  r.task = j.at("task").get<std::string>();
  r.split = j.at("split").get<std::string>();
  r.train_length = j.at("train_length").get<int64_t>();
  r.clamped = j.at("clamped").get<bool>();
  for (const auto& p : j.at("points"))
    r.points.push_back({p.at("length").get<int64_t>(), p.at("accuracy").get<double>(),
                        p.at("loss").get<double>(), p.at("samples").get<int64_t>()});
  return r;
}

double accuracy_at(const LengthResult& result, int64_t length) {
  for (const auto& p : result.points)
    if (p.length == length) return p.accuracy;
  throw std::out_of_range(fmt::format("no accuracy at length {}", length));
}

std::string length_result_key(const LengthResult& result,
                              const std::vector<std::string>& overrides) {
  std::string key = result.split;
  for (const auto& o : overrides) key += " " + o;
  return result.clamped ? key + " clamp" : key;
}

std::vector<int64_t> lengths_for_factors(const std::vector<double>& factors, int64_t train_length) {
  std::vector<int64_t> out;
  for (const double f : factors)
    out.push_back(static_cast<int64_t>(std::llround(f * double(train_length))));
  return out;
}

}  // namespace pelab
