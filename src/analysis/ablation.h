// Head ablation (PAPER.md section 3): accuracy with each (layer, head) removed, and per layer the
// "deposit" summary: is positional processing concentrated in one head?
//
// Methods: value  - zero the head's rows of the value projection (the authors'; for MLA the
//                   head's rows of W_UV). Since softmax(.) 0 = 0 this equals removing the head's
//                   output, and that is how the batched path computes it (tested against
//                   zeroing the weights by hand).
//          output - zero the head's attention output.
//          mean   - replace the head's output by its mean over the data (per position).
// All layer x head ablations run in one pass over the data: each batch runs the intact model once
// and keeps the residual entering every layer; the H ablations of layer l branch off there as a
// batch of H copies, so the layers below l are never recomputed.
#pragma once

#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "model/transformer.h"
#include "tasks/task.h"

namespace pelab {

enum class AblationMethod { kValue, kOutput, kMean };
// Throws ConfigError naming the value and the accepted methods.
AblationMethod parse_ablation_method(const std::string& name);
std::string ablation_method_name(AblationMethod method);

// Deposit rule (documented in docs/ANALYSIS.md): a layer is a single-head deposit when its most
// damaging head costs at least a quarter of the baseline accuracy and every other head of the
// layer costs at most a quarter of that head's drop.
struct LayerDeposit {
  int64_t layer = 0;
  int64_t worst_head = 0;
  double drop = 0;   // baseline accuracy - accuracy without worst_head
  double share = 0;  // drop / sum of the layer's positive drops (0 when none)
  bool single_head_deposit = false;
};

struct AblationResult {
  AblationMethod method = AblationMethod::kValue;
  int64_t samples = 0;
  double baseline_accuracy = 0;
  torch::Tensor accuracy;  // [layers, heads] float64
  std::vector<LayerDeposit> deposits;
};

// samples_done (optional) is called after each batch with the samples finished so far.
AblationResult ablate_heads(Transformer& model, const Dataset& data, AblationMethod method,
                            int64_t batch_size,
                            const std::function<void(int64_t)>& samples_done = {});
// Reference path for tests and speed comparison: one full evaluation per (layer, head); `value`
// zeroes the weights in place and restores them.
AblationResult ablate_heads_one_by_one(Transformer& model, const Dataset& data,
                                       AblationMethod method, int64_t batch_size);

std::vector<LayerDeposit> summarise_deposits(double baseline, const torch::Tensor& accuracy);
nlohmann::json ablation_to_json(const AblationResult& result, const std::string& split);

}  // namespace pelab
