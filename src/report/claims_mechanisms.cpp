// Claims about where position is processed: single-head deposits (head ablation), rotary heads,
// MLA, positional-component removal and the spectral (Schur/Weyl) claim. Rules: claims.h.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "report/claims.h"
#include "report/claims_common.h"

namespace pelab {

using nlohmann::json;
using namespace claims_detail;

namespace {

// The cell's ablations, or null when the cell or its ablations are missing.
const Cell* ablated_cell(const ReportData& data, const std::string& setup, const std::string& pe,
                         const std::string& task) {
  const Cell* c = data.find(setup, pe, task);
  return c && !c->ablations.empty() ? c : nullptr;
}

bool any_single_head_deposit(const HeadAblation& a) {
  return std::any_of(a.deposits.begin(), a.deposits.end(),
                     [](const LayerDeposit& d) { return d.single_head_deposit; });
}

bool layer_is_deposit(const HeadAblation& a, size_t layer) {
  return layer < a.deposits.size() && a.deposits[layer].single_head_deposit;
}

// Per layer: the deposit rule's numbers and the accuracy without each head, so that a verdict
// can be read beside the paper's per-layer figures (its `paper` field).
json deposits_json(const HeadAblation& a) {
  json layers = json::array();
  for (const auto& d : a.deposits) {
    json layer = {{"layer", d.layer + 1},  // numbered from 1, as in the paper
                  {"worst_head", d.worst_head},
                  {"drop", d.drop},
                  {"share", d.share},
                  {"single_head_deposit", d.single_head_deposit}};
    if (d.layer >= 0 && d.layer < static_cast<int64_t>(a.accuracy.size())) {
      const auto& row = a.accuracy[static_cast<size_t>(d.layer)];
      layer["accuracy_without_head"] = row;
      double low = 1, high = 0;
      for (size_t h = 0; h < row.size(); ++h)
        if (static_cast<int64_t>(h) != d.worst_head)
          low = std::min(low, row[h]), high = std::max(high, row[h]);
      if (row.size() > 1) layer["others_range"] = {low, high};
    }
    layers.push_back(layer);
  }
  return {{"seed", a.seed}, {"baseline_accuracy", a.baseline_accuracy}, {"layers", layers}};
}

// How many seeds of `cell` show `pattern`, with each seed's deposits as evidence.
template <typename Pattern>
Verdict seeds_showing(const Cell& cell, Pattern pattern, json& evidence) {
  int64_t showing = 0;
  for (const auto& a : cell.ablations) {
    showing += pattern(a);
    evidence.push_back(deposits_json(a));
  }
  return by_share(showing, int64_t(cell.ablations.size()));
}

// "p_i removal clearly hurts more than random" in one layer: the random directions' mean accuracy
// exceeds the accuracy without p_i by more than max(0.02, 2 x their std).
bool removal_hurts_more(const RemovalLayer& l) {
  return l.random_mean - l.accuracy_without_position > std::max(kMinMargin, 2 * l.random_std);
}

json removal_json(const PositionRemoval& r) {
  json layers = json::array();
  for (const auto& l : r.layers)
    layers.push_back({{"layer", l.layer + 1},
                      {"without_position", l.accuracy_without_position},
                      {"random_mean", l.random_mean},
                      {"random_std", l.random_std},
                      {"clearly_worse_than_random", removal_hurts_more(l)}});
  return {{"seed", r.seed}, {"baseline_accuracy", r.baseline_accuracy}, {"layers", layers}};
}

// "close to" the reference: within max(10% of its mean, the margin rule's margin).
bool close_to(const SeedStats& value, const SeedStats& reference) {
  return reference.mean - value.mean <=
         std::max(kCloseShare * reference.mean, margin(value, reference));
}

}  // namespace

ClaimVerdict claim_deposit_rope_task1_layer1(const ReportData& data, const std::string& setup) {
  auto v = start("deposit_rope_task1_layer1",
                 "Deposit: RoPE on Task 1 has a single-head deposit in layer 1", setup,
                 "Per seed, layer 1 (the first) is a single-head deposit by the ablation deposit "
                 "rule (worst head's drop >= 0.25 x baseline, every other head's drop <= 0.25 x "
                 "the worst's). Every seed -> holds; none -> does not hold; otherwise mixed.");
  const Cell* rope = ablated_cell(data, setup, "rope", kTask1);
  if (!rope) return not_measured(v, "no head ablation of a RoPE Task 1 run");
  v.evidence["seeds"] = json::array();
  v.verdict = seeds_showing(
      *rope, [](const HeadAblation& a) { return layer_is_deposit(a, 0); }, v.evidence["seeds"]);
  return v;
}

ClaimVerdict claim_no_deposit_nope_task1_rope_task2(const ReportData& data,
                                                    const std::string& setup) {
  auto v = start("no_deposit_nope_task1_rope_task2",
                 "NoPE on Task 1 and RoPE on Task 2 show no single-head deposit", setup,
                 "Per model (NoPE/Task 1, RoPE/Task 2): seeds with no single-head deposit in any "
                 "layer; every seed -> that part holds, none -> fails, otherwise mixed. Parts "
                 "combined.");
  const std::pair<const char*, const char*> models[] = {{"nope", kTask1}, {"rope", kTask2}};
  std::vector<Verdict> parts;
  for (const auto& [pe, task] : models) {
    const Cell* c = ablated_cell(data, setup, pe, task);
    if (!c) return not_measured(v, fmt::format("no head ablation of a {} {} run", pe, task));
    const std::string name = fmt::format("{}_{}", pe, task);
    v.evidence[name] = json::array();
    parts.push_back(seeds_showing(
        *c, [](const HeadAblation& a) { return !any_single_head_deposit(a); }, v.evidence[name]));
  }
  v.verdict = combine(parts);
  return v;
}

ClaimVerdict claim_absolute_broad_dependence(const ReportData& data, const std::string& setup) {
  auto v = start("absolute_broad_dependence",
                 "Absolute PE (sinusoidal, learned) on Task 1 depends broadly on many heads", setup,
                 "Per seed: no layer is a single-head deposit and at least 2 heads each cost >= "
                 "0.05 x baseline accuracy when ablated. Per PE: every seed -> holds, none -> "
                 "fails, otherwise mixed. Parts combined.");
  std::vector<Verdict> parts;
  for (const auto& pe : {"sinusoidal", "learned"}) {
    const Cell* c = ablated_cell(data, setup, pe, kTask1);
    if (!c) return not_measured(v, fmt::format("no head ablation of a {} Task 1 run", pe));
    v.evidence[pe]["seeds"] = json::array();
    parts.push_back(seeds_showing(
        *c,
        [](const HeadAblation& a) {
          int64_t mattering = 0;
          for (const auto& row : a.accuracy)
            for (double acc : row)
              mattering += a.baseline_accuracy - acc >= kHeadMattersShare * a.baseline_accuracy;
          return !any_single_head_deposit(a) && mattering >= 2;
        },
        v.evidence[pe]["seeds"]));
    v.evidence[pe]["verdict"] = verdict_name(parts.back());
  }
  v.verdict = combine(parts);
  return v;
}

ClaimVerdict claim_rope_abs_deposit_layer2(const ReportData& data, const std::string& setup) {
  auto v = start("rope_abs_deposit_layer2",
                 "RoPE + sinusoidal (rope_abs) on Task 1: no deposit in layer 1, it reappears in "
                 "layer 2",
                 setup,
                 "Per seed: layer 1 is not a single-head deposit and layer 2 is (deposit rule). "
                 "Every seed -> holds; none -> does not hold; otherwise mixed. Needs >= 2 layers.");
  const Cell* c = ablated_cell(data, setup, "rope_abs", kTask1);
  if (!c) return not_measured(v, "no head ablation of a rope_abs Task 1 run");
  if (c->n_layers < 2) return not_measured(v, "the model has a single layer");
  v.evidence["seeds"] = json::array();
  v.verdict = seeds_showing(
      *c, [](const HeadAblation& a) { return !layer_is_deposit(a, 0) && layer_is_deposit(a, 1); },
      v.evidence["seeds"]);
  return v;
}

ClaimVerdict claim_rope_heads(const ReportData& data, const std::string& setup) {
  auto v = start("rope_heads",
                 "RoPE on one head gives about half the accuracy; two or more heads come close to "
                 "full RoPE (Task 1)",
                 setup,
                 "Part one head: k=1 is clearly below full RoPE (margin rule) and its mean <= 0.75 "
                 "x full -> holds; not clearly below -> fails; otherwise mixed. Part two or more: "
                 "each k >= 2 within max(0.1 x full, margin) of full; all -> holds, none -> "
                 "fails, otherwise mixed. Parts combined.");
  const Cell* full = data.find(setup, "rope", kTask1, -1);
  const Cell* one = data.find(setup, "rope", kTask1, 1);
  if (!full || !full->final_accuracy.measured()) return not_measured(v, "no full RoPE Task 1 run");
  if (!one || !one->final_accuracy.measured()) return not_measured(v, "no RoPE run with k = 1");
  const SeedStats& f = full->final_accuracy;
  const SeedStats& k1 = one->final_accuracy;
  const Verdict one_part = compare(k1, f) != Order::kBelow  ? Verdict::kDoesNotHold
                           : k1.mean <= kHalfShare * f.mean ? Verdict::kHolds
                                                            : Verdict::kMixed;
  v.evidence["full"] = stats_json(f);
  v.evidence["k"] = json::object();
  int64_t close = 0, total = 0;
  for (const auto& c : data.cells) {
    if (c.setup != setup || c.pe != "rope" || c.task != kTask1 || c.rotary_heads < 0) continue;
    v.evidence["k"][std::to_string(c.rotary_heads)] = stats_json(c.final_accuracy);
    if (c.rotary_heads < 2 || !c.final_accuracy.measured()) continue;
    ++total;
    close += close_to(c.final_accuracy, f);
  }
  if (total == 0) return not_measured(v, "no RoPE run with 2 <= k < all heads");
  const Verdict many_part = by_share(close, total);
  v.evidence["parts"] = {{"one_head_about_half", verdict_name(one_part)},
                         {"two_or_more_close_to_full", verdict_name(many_part)}};
  v.verdict = combine({one_part, many_part});
  return v;
}

ClaimVerdict claim_mla(const ReportData& data, const std::string& setup) {
  auto v = start("mla",
                 "MLA nearly matches RoPE on Task 1, does better on Task 2, and has no single "
                 "indispensable head",
                 setup,
                 "Part Task 1: MLA's mean within max(0.1 x RoPE's, margin) of RoPE's -> holds, "
                 "else fails. Part Task 2: MLA clearly beats RoPE -> holds; clearly beaten -> "
                 "fails; otherwise mixed. Part heads: seeds (both tasks) with no single-head "
                 "deposit in any layer; all -> holds, none -> fails, otherwise mixed. Combined.");
  std::vector<Verdict> parts;
  for (const auto& task : {kTask1, kTask2}) {
    const Cell* mla = data.find(setup, "mla", task);
    const Cell* rope = data.find(setup, "rope", task);
    if (!mla || !mla->final_accuracy.measured() || !rope || !rope->final_accuracy.measured())
      return not_measured(v, fmt::format("no finished MLA and RoPE runs on {}", task));
    v.evidence[task] = {{"mla", stats_json(mla->final_accuracy)},
                        {"rope", stats_json(rope->final_accuracy)}};
    if (task == std::string(kTask1)) {
      parts.push_back(close_to(mla->final_accuracy, rope->final_accuracy) ? Verdict::kHolds
                                                                          : Verdict::kDoesNotHold);
    } else {
      const Order o = compare(mla->final_accuracy, rope->final_accuracy);
      parts.push_back(o == Order::kAbove   ? Verdict::kHolds
                      : o == Order::kBelow ? Verdict::kDoesNotHold
                                           : Verdict::kMixed);
    }
  }
  int64_t without = 0, seeds = 0;
  v.evidence["ablations"] = json::array();
  for (const auto& task : {kTask1, kTask2}) {
    const Cell* c = ablated_cell(data, setup, "mla", task);
    if (!c) continue;
    for (const auto& a : c->ablations) {
      ++seeds;
      without += !any_single_head_deposit(a);
      v.evidence["ablations"].push_back(deposits_json(a));
    }
  }
  if (seeds == 0) return not_measured(v, "no head ablation of an MLA run");
  parts.push_back(by_share(without, seeds));
  v.evidence["parts"] = {{"task1_nearly_matches", verdict_name(parts[0])},
                         {"task2_better", verdict_name(parts[1])},
                         {"no_single_head", verdict_name(parts[2])}};
  v.verdict = combine(parts);
  return v;
}

ClaimVerdict claim_removal_absolute(const ReportData& data, const std::string& setup) {
  auto v = start("removal_absolute",
                 "Removing p_i hurts far more than removing a random vector of the same norm, in "
                 "every layer (absolute PE, Task 1)",
                 setup,
                 "Per layer of each sinusoidal and learned Task 1 run: random_mean - "
                 "accuracy_without_position > max(0.02, 2 x random_std). Per PE: every (seed, "
                 "layer) -> holds, none -> fails, otherwise mixed. Parts combined.");
  std::vector<Verdict> parts;
  for (const auto& pe : {"sinusoidal", "learned"}) {
    const Cell* c = data.find(setup, pe, kTask1);
    if (!c || c->removals.empty())
      return not_measured(v, fmt::format("no p_i removal of a {} Task 1 run", pe));
    int64_t showing = 0, total = 0;
    v.evidence[pe] = json::array();
    for (const auto& r : c->removals) {
      for (const auto& l : r.layers) {
        showing += removal_hurts_more(l);
        ++total;
      }
      v.evidence[pe].push_back(removal_json(r));
    }
    parts.push_back(by_share(showing, total));
  }
  v.verdict = combine(parts);
  return v;
}

ClaimVerdict claim_removal_rope_abs(const ReportData& data, const std::string& setup) {
  auto v = start("removal_rope_abs",
                 "With RoPE added (rope_abs, Task 1), the p_i-vs-random difference vanishes after "
                 "layer 2",
                 setup,
                 "Per seed: layer 1 shows the difference (random_mean - without_position > "
                 "max(0.02, 2 x random_std)) and no layer after layer 2 does. Every seed -> holds; "
                 "none -> does not hold; otherwise mixed. Needs more than 2 layers.");
  const Cell* c = data.find(setup, "rope_abs", kTask1);
  if (!c || c->removals.empty()) return not_measured(v, "no p_i removal of a rope_abs Task 1 run");
  if (c->n_layers <= 2)
    return not_measured(v, fmt::format("the model has {} layers: none after layer 2", c->n_layers));
  int64_t showing = 0;
  v.evidence["seeds"] = json::array();
  for (const auto& r : c->removals) {
    bool first = !r.layers.empty() && removal_hurts_more(r.layers[0]);
    bool later_vanish = true;
    for (const auto& l : r.layers)
      if (l.layer >= 2) later_vanish &= !removal_hurts_more(l);
    showing += first && later_vanish;
    v.evidence["seeds"].push_back(removal_json(r));
  }
  v.verdict = by_share(showing, int64_t(c->removals.size()));
  return v;
}

ClaimVerdict claim_spectral_contraction(const ReportData& data, const std::string& setup) {
  auto v = start("spectral_contraction",
                 "RoPE's Hadamard coupling contracts the spectrum (Schur bound holds, condition "
                 "number shrinks); an additive bias can widen it",
                 setup,
                 "RoPE kernel and trained-run studies: part Schur = share of Schur checks whose "
                 "bound holds; part contraction = share with contraction ratio <= 1 (all -> "
                 "holds, none -> fails, otherwise mixed). ALiBi and relative studies: part widen "
                 "= some Weyl check with contraction ratio > 1 -> holds, none -> fails. Combined.");
  std::vector<const SpectrumData*> rope_studies = data.run_spectra(setup, "rope");
  if (const auto* k = data.kernel_spectrum(setup, "rope"))
    rope_studies.insert(rope_studies.begin(), k);
  int64_t schur = 0, holding = 0, with_ratio = 0, contracting = 0;
  double max_ratio = 0;
  for (const auto* s : rope_studies)
    for (const auto& c : s->checks) {
      if (c.kind != "schur") continue;
      ++schur;
      holding += c.bound_holds;
      if (!c.contraction_ratio) continue;
      ++with_ratio;
      contracting += *c.contraction_ratio <= 1 + kSpectralTolerance;
      max_ratio = std::max(max_ratio, *c.contraction_ratio);
    }
  if (schur == 0) return not_measured(v, "no Schur checks for RoPE");
  int64_t weyl = 0, widening = 0;
  double max_bias_ratio = 0;
  for (const auto& pe : {"alibi", "relative"}) {
    std::vector<const SpectrumData*> studies = data.run_spectra(setup, pe);
    if (const auto* k = data.kernel_spectrum(setup, pe)) studies.push_back(k);
    for (const auto* s : studies)
      for (const auto& c : s->checks) {
        if (c.kind != "weyl" || !c.contraction_ratio) continue;
        ++weyl;
        widening += *c.contraction_ratio > 1 + kSpectralTolerance;
        max_bias_ratio = std::max(max_bias_ratio, *c.contraction_ratio);
      }
  }
  if (weyl == 0) return not_measured(v, "no Weyl checks with condition numbers for ALiBi/relative");
  const Verdict schur_part = by_share(holding, schur);
  const Verdict contraction_part = by_share(contracting, with_ratio);
  const Verdict widen_part = widening > 0 ? Verdict::kHolds : Verdict::kDoesNotHold;
  v.evidence = {{"rope_schur_checks", schur},
                {"rope_bounds_hold", holding},
                {"rope_checks_with_ratio", with_ratio},
                {"rope_checks_that_contract", contracting},
                {"rope_max_contraction_ratio", with_ratio ? json(max_ratio) : json(nullptr)},
                {"bias_weyl_checks", weyl},
                {"bias_checks_that_widen", widening},
                {"bias_max_ratio", max_bias_ratio},
                {"parts",
                 {{"schur_bound_holds", verdict_name(schur_part)},
                  {"condition_shrinks", verdict_name(contraction_part)},
                  {"additive_can_widen", verdict_name(widen_part)}}}};
  v.verdict = combine({schur_part, contraction_part, widen_part});
  return v;
}

}  // namespace pelab
