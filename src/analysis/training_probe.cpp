#include "analysis/training_probe.h"

#include <algorithm>

#include "analysis/hessian.h"
#include "analysis/spectral.h"

namespace pelab {

nlohmann::json training_probe(Transformer& model, const DatasetSplit& split,
                              const TrainConfig& train) {
  const int64_t n = std::min(train.track_samples, split.test.size());
  const Dataset probe = split.test.index(torch::arange(n, torch::kLong));
  nlohmann::json layers = nlohmann::json::array();
  const auto stats = logit_spectra(model, probe, n);
  const int64_t heads = model->config().n_heads;
  for (std::size_t i = 0; i < stats.size(); i += heads) {
    double cond = 0, cond_within = 0, rank = 0;
    std::vector<double> per_head_cond;
    for (int64_t h = 0; h < heads; ++h) {
      cond += stats[i + h].mean_log10_condition;
      cond_within += stats[i + h].mean_log10_condition_within_rank;
      rank += stats[i + h].mean_effective_rank;
      per_head_cond.push_back(stats[i + h].mean_log10_condition);
    }
    layers.push_back({{"layer", stats[i].layer},
                      {"mean_log10_condition", cond / double(heads)},
                      {"mean_log10_condition_within_rank", cond_within / double(heads)},
                      {"mean_effective_rank", rank / double(heads)},
                      {"head_log10_condition", per_head_cond}});
  }
  nlohmann::json out = {{"samples", n}, {"logit_spectra", layers}};
  if (train.hessian_iterations > 0) {
    const auto eig = top_hessian_eigenvalue(model, probe, train.hessian_iterations,
                                            static_cast<uint64_t>(train.seed));
    out["hessian_top_eigenvalue"] = eig.eigenvalue;
    out["hessian_iterations"] = eig.iterations;
    out["hessian_relative_change"] = eig.relative_change;
  }
  return out;
}

}  // namespace pelab
