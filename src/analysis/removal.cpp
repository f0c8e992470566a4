#include "analysis/removal.h"

#include <fmt/format.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "analysis/batches.h"

namespace pelab {

namespace {

// [1 + draws, L, d]: p itself, then the random vectors of the same per-position norms.
torch::Tensor removal_vectors(const torch::Tensor& p, int64_t draws, uint64_t seed) {
  auto generator = at::make_generator<at::CPUGeneratorImpl>(seed);
  std::vector<torch::Tensor> vectors{p};
  const auto norms = p.norm(2, -1, true);  // [L, 1]
  for (int64_t d = 0; d < draws; ++d) {
    auto g = at::normal(0.0, 1.0, p.sizes(), generator, p.options());
    vectors.push_back(g / g.norm(2, -1, true) * norms);
  }
  return torch::stack(vectors);
}

}  // namespace

RemovalResult remove_positional_component(Transformer& model, const Dataset& data, int64_t draws,
                                          uint64_t seed, int64_t batch_size,
                                          const std::function<void(int64_t)>& samples_done) {
  const auto L = data.tokens.size(1);
  const auto p = model->pe->embedding(L);
  if (!p.defined())
    throw ConfigError(fmt::format(
        "positional-component removal needs an absolute PE (sinusoidal, learned, rope_abs); this "
        "run uses '{}'",
        model->pe->name()));
  if (draws < 1) throw ConfigError(fmt::format("--draws {}: need at least 1", draws));
  const bool was_training = model->is_training();
  model->eval();
  torch::NoGradGuard no_grad;
  const bool keys_from_embeddings = model->config().kv_source == "embedding";
  const auto layers = static_cast<int64_t>(model->blocks->size());
  const int64_t variants = 1 + draws;
  const auto vectors = removal_vectors(p.detach(), draws, seed);  // [V, L, d]
  // Variants are a batch dimension; keep the branch batch near the evaluation batch size.
  const int64_t chunk = std::max<int64_t>(1, batch_size / variants);

  int64_t baseline_correct = 0, done = 0;
  std::vector<std::vector<int64_t>> correct(layers, std::vector<int64_t>(variants, 0));
  for_each_batch(data, chunk, [&](const Batch& b) {
    const auto B = b.tokens.size(0);
    ForwardState s = model->begin(b.tokens, b.lengths);
    const auto subtract = vectors.repeat_interleave(B, 0);  // variant-major blocks of B
    for (int64_t l = 0; l < layers; ++l) {
      ForwardState branch = s.repeat(variants);
      branch.x = branch.x - subtract;
      if (keys_from_embeddings) branch.embeddings = branch.embeddings - subtract;
      for (int64_t k = l; k < layers; ++k) model->run_block(branch, k);
      const auto hits = model->finish(branch).argmax(-1).eq(b.labels.repeat(variants));
      const auto per_variant = hits.view({variants, B}).sum(1);
      for (int64_t v = 0; v < variants; ++v) correct[l][v] += per_variant[v].item<int64_t>();
      model->run_block(s, l);
    }
    baseline_correct += count_correct(model->finish(s), b.labels);
    done += B;
    if (samples_done) samples_done(done);
  });

  RemovalResult r;
  r.samples = data.size();
  r.baseline_accuracy = double(baseline_correct) / double(r.samples);
  for (int64_t l = 0; l < layers; ++l) {
    LayerRemoval lr;
    lr.layer = l;
    lr.accuracy_without_position = double(correct[l][0]) / double(r.samples);
    for (int64_t v = 1; v < variants; ++v)
      lr.accuracy_without_random.push_back(double(correct[l][v]) / double(r.samples));
    for (double a : lr.accuracy_without_random) lr.random_mean += a;
    lr.random_mean /= double(draws);
    if (draws > 1) {
      double sq = 0;
      for (double a : lr.accuracy_without_random) sq += (a - lr.random_mean) * (a - lr.random_mean);
      lr.random_std = std::sqrt(sq / double(draws - 1));
    }
    r.layers.push_back(lr);
  }
  model->train(was_training);
  return r;
}

nlohmann::json removal_to_json(const RemovalResult& r, const std::string& split) {
  nlohmann::json j = {
      {"split", split}, {"samples", r.samples}, {"baseline_accuracy", r.baseline_accuracy}};
  j["layers"] = nlohmann::json::array();
  for (const auto& l : r.layers)
    j["layers"].push_back({{"layer", l.layer},
                           {"accuracy_without_position", l.accuracy_without_position},
                           {"accuracy_without_random", l.accuracy_without_random},
                           {"random_mean", l.random_mean},
                           {"random_std", l.random_std}});
  return j;
}

}  // namespace pelab
