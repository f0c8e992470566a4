#include "report/paper_numbers.h"

#include <map>

namespace pelab {

using nlohmann::json;

const std::vector<PaperAccuracy>& paper_accuracies() {
  static const std::vector<PaperAccuracy> table = {
      // Task 1 (distance, 70 labels). Table where it gives the PE, else Fig. 2 at epoch 100.
      {"rope", "distance", -1, 0.9264, "Table"},
      {"nope", "distance", -1, 0.0351, "Table"},
      {"mla", "distance", -1, 0.8834, "Table"},
      {"sinusoidal", "distance", -1, 0.775, "Fig. 2 (fig), epoch 100"},
      {"learned", "distance", -1, 0.690, "Fig. 2 (fig), epoch 100"},
      {"alibi", "distance", -1, 0.274, "Fig. 2 (fig), epoch 100"},
      {"relative", "distance", -1, 0.04, "Fig. 2 (fig), epoch 100, ~"},
      {"rope_abs", "distance", -1, 0.997, "Fig. 5 (fig)"},
      {"rope", "distance", 0, 0.035, "Fig. 6 (fig)"},
      {"rope", "distance", 1, 0.52, "Fig. 6 (fig)"},
      {"rope", "distance", 2, 0.86, "Fig. 6 (fig)"},
      {"rope", "distance", 4, 0.86, "Fig. 6 (fig)"},
      {"rope", "distance", 8, 0.91, "Fig. 6 (fig)"},
      // Task 2 (count, labels 0..100). Table, else Fig. 3 at epoch 150.
      {"rope", "count", -1, 0.6943, "Table"},
      {"nope", "count", -1, 0.7769, "Table"},
      {"mla", "count", -1, 0.9741, "Table"},
      {"relative", "count", -1, 0.605, "Fig. 3 (fig), epoch 150, ~"},
      {"sinusoidal", "count", -1, 0.482, "Fig. 3 (fig), epoch 150"},
      {"learned", "count", -1, 0.280, "Fig. 3 (fig), epoch 150"},
      {"alibi", "count", -1, 0.235, "Fig. 3 (fig), epoch 150"},
      {"rope_abs", "count", -1, 0.745, "Fig. 5 (fig)"},
      {"rope", "count", 0, 0.777, "Fig. 6 (fig)"},
      {"rope", "count", 1, 0.757, "Fig. 6 (fig)"},
      {"rope", "count", 2, 0.738, "Fig. 6 (fig)"},
      {"rope", "count", 4, 0.809, "Fig. 6 (fig)"},
      {"rope", "count", 8, 0.836, "Fig. 6 (fig)"},
  };
  return table;
}

const PaperAccuracy* paper_accuracy(const std::string& pe, const std::string& task,
                                    int64_t rotary_heads, int64_t n_heads) {
  constexpr int64_t kPaperHeads = 16;
  if (rotary_heads == n_heads) rotary_heads = -1;  // k = all heads is the full RoPE model
  if (rotary_heads >= 0 && n_heads != kPaperHeads) return nullptr;
  for (const auto& p : paper_accuracies())
    if (p.pe == pe && p.task == task && p.rotary_heads == rotary_heads) return &p;
  return nullptr;
}

json paper_for_claim(const std::string& claim_id) {
  static const std::map<std::string, json> claims = {
      {"task1_rope_fastest_best",
       {{"text",
         "Fig. 2 at epoch 100: RoPE 0.933 ahead of sinusoidal 0.775, learned 0.690; RoPE by epoch "
         "5/10/15/20: 0.053/0.54/0.86/0.87; Table: RoPE 0.9264"},
        {"numbers",
         {{"rope", 0.933},
          {"sinusoidal", 0.775},
          {"learned", 0.690},
          {"alibi", 0.274},
          {"relative", 0.04},
          {"nope", 0.037},
          {"rope_by_epoch_5_10_15_20", {0.053, 0.54, 0.86, 0.87}},
          {"rope_table", 0.9264}}}}},
      {"task1_absolute_follow",
       {{"text",
         "Fig. 2 at epoch 100: RoPE 0.933 > sinusoidal 0.775 > learned 0.690 > ALiBi 0.274 "
         "> relative ~0.04, NoPE ~0.037"},
        {"numbers",
         {{"rope", 0.933},
          {"sinusoidal", 0.775},
          {"learned", 0.690},
          {"alibi", 0.274},
          {"relative", 0.04},
          {"nope", 0.037}}}}},
      {"task1_bias_pes_fail",
       {{"text", "Fig. 2 at epoch 100: ALiBi 0.274, relative ~0.04, against RoPE 0.933"},
        {"numbers", {{"alibi", 0.274}, {"relative", 0.04}, {"best_rope", 0.933}}}}},
      {"task1_nope_at_chance",
       {{"text",
         "Table: NoPE 0.0351 on Task 1 (70 labels: chance 0.014, length-only Bayes "
         "accuracy 0.054)"},
        {"numbers", {{"nope", 0.0351}, {"chance", 1.0 / 70.0}, {"length_only", 0.0537}}}}},
      {"task2_every_pe_counts",
       {{"text",
         "Fig. 3 at epoch 150: NoPE 0.621, relative ~0.605, RoPE 0.555, sinusoidal 0.482, "
         "learned 0.280, ALiBi 0.235; Table: RoPE 0.6943, NoPE 0.7769, MLA 0.9741 "
         "(chance 0.0099)"},
        {"numbers",
         {{"nope", 0.621},
          {"relative", 0.605},
          {"rope", 0.555},
          {"sinusoidal", 0.482},
          {"learned", 0.280},
          {"alibi", 0.235}}}}},
      {"task2_nope_relative_best_alibi_worst",
       {{"text",
         "Fig. 3 at epoch 150: NoPE 0.621 and relative ~0.605 the highest, ALiBi 0.235 "
         "the lowest"},
        {"numbers",
         {{"nope", 0.621},
          {"relative", 0.605},
          {"rope", 0.555},
          {"sinusoidal", 0.482},
          {"learned", 0.280},
          {"alibi", 0.235}}}}},
      {"task2_rope_not_best",
       {{"text",
         "Table: RoPE 0.6943 below NoPE 0.7769 and MLA 0.9741; Fig. 3: RoPE 0.555 below "
         "NoPE 0.621"},
        {"numbers",
         {{"rope_table", 0.6943},
          {"nope_table", 0.7769},
          {"mla_table", 0.9741},
          {"rope_fig3", 0.555},
          {"nope_fig3", 0.621}}}}},
      {"deposit_rope_task1_layer1",
       {{"text",
         "Fig. 4 (train+test): layer 1 baseline 0.970; head 2 -> 0.47, head 9 -> 0.915, "
         "the other 14 heads 0.95-0.97"},
        {"numbers",
         {{"layer", 1},
          {"baseline", 0.970},
          {"worst_head", 2},
          {"accuracy_without_worst", 0.47},
          {"second_head", 9},
          {"accuracy_without_second", 0.915},
          {"others_range", {0.95, 0.97}}}}}},
      {"no_deposit_nope_task1_rope_task2",
       {{"text",
         "Fig. 4 layer 1: NoPE Task 1 baseline 0.253, heads 0.203-0.249; RoPE Task 2 "
         "baseline 0.782, heads 0.26-0.49 (every head matters)"},
        {"numbers",
         {{"nope_task1", {{"baseline", 0.253}, {"heads_range", {0.203, 0.249}}}},
          {"rope_task2", {{"baseline", 0.782}, {"heads_range", {0.26, 0.49}}}}}}}},
      {"absolute_broad_dependence",
       {{"text", "stated without numbers in the paper's section 7 list"},
        {"numbers", json::object()}}},
      {"rope_abs_deposit_layer2",
       {{"text",
         "Fig. 5: baseline ~0.98; layer 1 flat 0.972-0.977; layer 2 head 6 -> 0.67, head "
         "1 -> 0.91, others ~0.97"},
        {"numbers",
         {{"baseline", 0.98},
          {"layer1_range", {0.972, 0.977}},
          {"layer2_worst_head", 6},
          {"layer2_accuracy_without_worst", 0.67},
          {"layer2_second_head", 1},
          {"layer2_accuracy_without_second", 0.91}}}}},
      {"rope_heads",
       {{"text", "Fig. 6, Task 1, k = 0/1/2/4/8/16 of 16 heads: 0.035/0.52/0.86/0.86/0.91/0.926"},
        {"numbers",
         {{"k", {0, 1, 2, 4, 8, 16}},
          {"task1", {0.035, 0.52, 0.86, 0.86, 0.91, 0.926}},
          {"task2", {0.777, 0.757, 0.738, 0.809, 0.836, 0.694}}}}}},
      {"mla",
       {{"text",
         "Table: MLA 0.8834 / 0.9741 (Task 1 / Task 2) against RoPE 0.9264 / 0.6943; "
         "Fig. 7 Task 1 ablation, baseline ~0.91, layer 1 heads 0.27-0.44"},
        {"numbers",
         {{"mla", {0.8834, 0.9741}},
          {"rope", {0.9264, 0.6943}},
          {"ablation_ranges_by_layer",
           {{0.27, 0.44},
            {0.34, 0.79},
            {0.65, 0.94},
            {0.58, 0.94},
            {0.75, 0.875},
            {0.75, 0.89}}}}}}},
      {"removal_absolute",
       {{"text",
         "Fig. 8, sinusoidal Task 1, baseline 0.631: without p_i / without random, layers "
         "1..6: 0.107/0.205, 0.326/0.546, 0.497/0.627, 0.541/0.635, 0.608/0.633, "
         "0.631/0.631"},
        {"numbers",
         {{"baseline", 0.631},
          {"without_position", {0.107, 0.326, 0.497, 0.541, 0.608, 0.631}},
          {"without_random", {0.205, 0.546, 0.627, 0.635, 0.633, 0.631}}}}}},
      {"removal_rope_abs",
       {{"text",
         "Fig. 8, rope_abs Task 1, baseline 0.932: layer 1 0.662 vs 0.870, layer 2 0.897 "
         "vs 0.930, then 0.924-0.930 vs 0.932-0.936"},
        {"numbers",
         {{"baseline", 0.932},
          {"layer1", {0.662, 0.870}},
          {"layer2", {0.897, 0.930}},
          {"layers3_6_without_position_range", {0.924, 0.930}},
          {"layers3_6_without_random_range", {0.932, 0.936}}}}}},
      {"spectral_contraction",
       {{"text", "a theorem in the paper (Schur product bound); no measured number"},
        {"numbers", json::object()}}},
  };
  const auto it = claims.find(claim_id);
  if (it != claims.end()) return it->second;
  return {{"text", "no number in PAPER.md section 7"}, {"numbers", json::object()}};
}

}  // namespace pelab
