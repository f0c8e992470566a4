#include "analysis/ablation.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "analysis/batches.h"
#include "model/mla.h"

namespace pelab {

AblationMethod parse_ablation_method(const std::string& name) {
  if (name == "value") return AblationMethod::kValue;
  if (name == "output") return AblationMethod::kOutput;
  if (name == "mean") return AblationMethod::kMean;
  throw ConfigError(fmt::format("--method: bad value '{}'; accepted: value, output, mean", name));
}

std::string ablation_method_name(AblationMethod method) {
  switch (method) {
    case AblationMethod::kValue:
      return "value";
    case AblationMethod::kOutput:
      return "output";
    case AblationMethod::kMean:
      return "mean";
  }
  return "?";
}

namespace {

// Mean of every head's output over the data, per layer: [H, L, Dv] (for the mean method).
std::vector<torch::Tensor> mean_head_outputs(Transformer& model, const Dataset& data,
                                             int64_t batch_size) {
  std::vector<torch::Tensor> sums;
  std::vector<AttentionRecord> records;
  ForwardOptions options;
  options.attention_records = &records;
  for_each_batch(data, batch_size, [&](const Batch& b) {
    model->forward(b.tokens, b.lengths, options);
    if (sums.empty())
      for (auto& r : records) sums.push_back(torch::zeros_like(r.head_outputs[0]));
    for (std::size_t l = 0; l < records.size(); ++l) sums[l] += records[l].head_outputs.sum(0);
  });
  for (auto& s : sums) s /= double(data.size());
  return sums;
}

// Gates for H copies of a batch of B: copy h (rows h*B .. h*B+B-1) has head h switched off.
torch::Tensor one_off_gates(int64_t heads, int64_t batch) {
  return (1 - torch::eye(heads)).repeat_interleave(batch, 0);  // [H*B, H]
}

struct Prepared {
  int64_t layers, heads;
  std::vector<torch::Tensor> replacements;  // per layer, mean method only
};

Prepared prepare(Transformer& model, const Dataset& data, AblationMethod method,
                 int64_t batch_size) {
  Prepared p{static_cast<int64_t>(model->blocks->size()), model->config().n_heads, {}};
  if (method == AblationMethod::kMean)
    p.replacements = mean_head_outputs(model, data, batch_size);
  else
    p.replacements.assign(p.layers, torch::Tensor());
  return p;
}

AblationResult finish_result(AblationMethod method, int64_t samples, int64_t baseline_correct,
                             const torch::Tensor& correct_counts) {
  AblationResult r;
  r.method = method;
  r.samples = samples;
  r.baseline_accuracy = double(baseline_correct) / double(samples);
  r.accuracy = correct_counts.to(torch::kDouble) / double(samples);
  r.deposits = summarise_deposits(r.baseline_accuracy, r.accuracy);
  return r;
}

// Rows of the value projection that belong to `head` (MHA: value; MLA: value_up).
std::vector<torch::Tensor> value_rows(torch::nn::Module& attention, int64_t head,
                                      int64_t head_dim) {
  std::vector<torch::Tensor> rows;
  for (auto& p : attention.named_parameters(/*recurse=*/true)) {
    const bool is_value = p.key().rfind("value.", 0) == 0 || p.key().rfind("value_up.", 0) == 0;
    if (is_value) rows.push_back(p.value().narrow(0, head * head_dim, head_dim));
  }
  return rows;
}

}  // namespace

AblationResult ablate_heads(Transformer& model, const Dataset& data, AblationMethod method,
                            int64_t batch_size, const std::function<void(int64_t)>& samples_done) {
  const bool was_training = model->is_training();
  model->eval();
  torch::NoGradGuard no_grad;
  const Prepared p = prepare(model, data, method, batch_size);
  // Each branch holds H copies of the batch, so split the data to keep memory at batch_size.
  const int64_t chunk = std::max<int64_t>(1, batch_size / p.heads);
  int64_t baseline_correct = 0, done = 0;
  auto counts = torch::zeros({p.layers, p.heads}, torch::kLong);
  for_each_batch(data, chunk, [&](const Batch& b) {
    const int64_t B = b.tokens.size(0);
    ForwardState s = model->begin(b.tokens, b.lengths);
    std::vector<ForwardState> before;
    for (int64_t l = 0; l < p.layers; ++l) {
      before.push_back(s);
      model->run_block(s, l);
    }
    baseline_correct += count_correct(model->finish(s), b.labels);
    const auto gates = one_off_gates(p.heads, B);
    const auto labels = b.labels.repeat({p.heads});
    for (int64_t l = 0; l < p.layers; ++l) {
      ForwardState branch = before[l].repeat(p.heads);
      model->run_block(branch, l, gates, p.replacements[l]);
      for (int64_t m = l + 1; m < p.layers; ++m) model->run_block(branch, m);
      auto hits = model->finish(branch).argmax(-1).eq(labels).view({p.heads, B}).sum(1);
      counts[l] += hits;
    }
    done += B;
    if (samples_done) samples_done(done);
  });
  model->train(was_training);
  return finish_result(method, data.size(), baseline_correct, counts);
}

AblationResult ablate_heads_one_by_one(Transformer& model, const Dataset& data,
                                       AblationMethod method, int64_t batch_size) {
  const bool was_training = model->is_training();
  model->eval();
  torch::NoGradGuard no_grad;
  const Prepared p = prepare(model, data, method, batch_size);
  const int64_t head_dim = model->config().d_model / p.heads;
  int64_t baseline_correct = 0;
  for_each_batch(data, batch_size, [&](const Batch& b) {
    baseline_correct += count_correct(model->forward(b.tokens, b.lengths), b.labels);
  });
  auto counts = torch::zeros({p.layers, p.heads}, torch::kLong);
  for (int64_t l = 0; l < p.layers; ++l) {
    auto& attention = *model->blocks[l]->as<Block>()->attention;
    for (int64_t h = 0; h < p.heads; ++h) {
      std::vector<torch::Tensor> saved;
      auto rows = value_rows(attention, h, head_dim);
      if (method == AblationMethod::kValue)
        for (auto& r : rows) {
          saved.push_back(r.clone());
          r.zero_();
        }
      for_each_batch(data, batch_size, [&](const Batch& b) {
        ForwardState s = model->begin(b.tokens, b.lengths);
        for (int64_t m = 0; m < p.layers; ++m) {
          torch::Tensor gate;
          if (m == l && method != AblationMethod::kValue) {
            gate = torch::ones({b.tokens.size(0), p.heads});
            gate.select(1, h).zero_();
          }
          model->run_block(s, m, gate, m == l ? p.replacements[l] : torch::Tensor());
        }
        counts[l][h] += count_correct(model->finish(s), b.labels);
      });
      for (std::size_t i = 0; i < saved.size(); ++i) rows[i].copy_(saved[i]);
    }
  }
  model->train(was_training);
  return finish_result(method, data.size(), baseline_correct, counts);
}

std::vector<LayerDeposit> summarise_deposits(double baseline, const torch::Tensor& accuracy) {
  std::vector<LayerDeposit> out;
  for (int64_t l = 0; l < accuracy.size(0); ++l) {
    auto drops = (baseline - accuracy[l]).clamp_min(0.0);
    LayerDeposit d;
    d.layer = l;
    d.worst_head = drops.argmax().item<int64_t>();
    d.drop = drops[d.worst_head].item<double>();
    const double total = drops.sum().item<double>();
    d.share = total > 0 ? d.drop / total : 0.0;
    double second = 0;
    for (int64_t h = 0; h < drops.size(0); ++h)
      if (h != d.worst_head) second = std::max(second, drops[h].item<double>());
    d.single_head_deposit = d.drop > 0 && d.drop >= 0.25 * baseline && second <= 0.25 * d.drop;
    out.push_back(d);
  }
  return out;
}

nlohmann::json ablation_to_json(const AblationResult& r, const std::string& split) {
  nlohmann::json matrix = nlohmann::json::array();
  for (int64_t l = 0; l < r.accuracy.size(0); ++l) {
    nlohmann::json row = nlohmann::json::array();
    for (int64_t h = 0; h < r.accuracy.size(1); ++h) row.push_back(r.accuracy[l][h].item<double>());
    matrix.push_back(row);
  }
  nlohmann::json deposits = nlohmann::json::array();
  for (const auto& d : r.deposits)
    deposits.push_back({{"layer", d.layer},
                        {"worst_head", d.worst_head},
                        {"drop", d.drop},
                        {"share", d.share},
                        {"single_head_deposit", d.single_head_deposit}});
  nlohmann::json j = {
      {"method", ablation_method_name(r.method)},
      {"split", split},
      {"samples", r.samples},
      {"baseline_accuracy", r.baseline_accuracy},
      {"accuracy", matrix},
      {"deposits", deposits},
      {"deposit_rule",
       "single-head deposit: the worst head's drop >= 0.25 x baseline accuracy and every other "
       "head's drop <= 0.25 x the worst head's drop"}};
  return j;
}

}  // namespace pelab
