// The rule helpers and the accuracy claims (Task 1 and Task 2 rankings). The claims about
// mechanisms (deposits, rotary heads, MLA, p_i removal, spectra) are in claims_mechanisms.cpp.
#include "report/claims.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>

#include "report/claims_common.h"
#include "report/paper_numbers.h"

namespace pelab {

using nlohmann::json;

std::string verdict_name(Verdict verdict) {
  switch (verdict) {
    case Verdict::kHolds:
      return "holds";
    case Verdict::kDoesNotHold:
      return "does not hold";
    case Verdict::kMixed:
      return "mixed";
    case Verdict::kNotMeasured:
      return "not measured";
  }
  return "not measured";
}

double margin(const SeedStats& a, const SeedStats& b) {
  return std::max(kMinMargin, a.std + b.std);
}

Order compare(const SeedStats& a, const SeedStats& b) {
  const double difference = a.mean - b.mean;
  if (difference > margin(a, b)) return Order::kAbove;
  if (-difference > margin(a, b)) return Order::kBelow;
  return Order::kTied;
}

Verdict by_share(int64_t showing, int64_t total) {
  if (total == 0) return Verdict::kNotMeasured;
  if (showing == total) return Verdict::kHolds;
  if (showing == 0) return Verdict::kDoesNotHold;
  return Verdict::kMixed;
}

Verdict combine(const std::vector<Verdict>& parts) {
  if (parts.empty()) return Verdict::kNotMeasured;
  auto all = [&](Verdict v) {
    return std::all_of(parts.begin(), parts.end(), [v](Verdict p) { return p == v; });
  };
  if (std::find(parts.begin(), parts.end(), Verdict::kNotMeasured) != parts.end())
    return Verdict::kNotMeasured;
  if (all(Verdict::kHolds)) return Verdict::kHolds;
  if (all(Verdict::kDoesNotHold)) return Verdict::kDoesNotHold;
  return Verdict::kMixed;
}

json stats_json(const SeedStats& s) {
  if (!s.measured()) return nullptr;
  return {{"mean", s.mean}, {"std", s.std}, {"min", s.min}, {"max", s.max}, {"n", s.n}};
}

namespace claims_detail {

ClaimVerdict start(const char* id, const char* claim, const std::string& setup, const char* rule) {
  ClaimVerdict v;
  v.id = id;
  v.claim = claim;
  v.setup = setup;
  v.rule = rule;
  return v;
}

ClaimVerdict not_measured(ClaimVerdict v, const std::string& missing) {
  v.verdict = Verdict::kNotMeasured;
  v.evidence["missing"] = missing;
  return v;
}

std::map<std::string, const Cell*> measured_cells(const ReportData& data, const std::string& setup,
                                                  const std::string& task,
                                                  const std::vector<std::string>& pes) {
  std::map<std::string, const Cell*> out;
  for (const auto& pe : pes) {
    const Cell* c = data.find(setup, pe, task);
    if (c && c->final_accuracy.measured()) out[pe] = c;
  }
  return out;
}

std::string missing_list(const std::map<std::string, const Cell*>& have,
                         const std::vector<std::string>& wanted, const std::string& task) {
  std::vector<std::string> missing;
  for (const auto& pe : wanted)
    if (!have.count(pe)) missing.push_back(pe);
  return fmt::format("no finished {} runs on {}", fmt::join(missing, ", "), task);
}

json accuracies_json(const std::map<std::string, const Cell*>& cells) {
  json out = json::object();
  for (const auto& [pe, c] : cells) out[pe] = stats_json(c->final_accuracy);
  return out;
}

const Cell* best_of(const std::map<std::string, const Cell*>& cells) {
  const Cell* best = nullptr;
  for (const auto& [pe, c] : cells)
    if (!best || c->final_accuracy.mean > best->final_accuracy.mean) best = c;
  return best;
}

}  // namespace claims_detail

using namespace claims_detail;

namespace {

// A PE "learns" Task 1 when its final accuracy is clearly above the length-only floor.
bool learns_beyond_length(const Cell& c) {
  return std::isfinite(c.length_only_accuracy) &&
         c.final_accuracy.mean - c.final_accuracy.std > c.length_only_accuracy + kMinMargin;
}

// a needs clearly fewer samples than b: by more than the spread and half an epoch.
Order compare_samples(const Cell& a, const Cell& b) {
  const SeedStats &sa = a.samples_to_share, &sb = b.samples_to_share;
  if (!sa.measured() || !sb.measured()) return Order::kTied;
  const double tolerance =
      std::max(sa.std + sb.std, 0.5 * double(std::max(a.samples_per_epoch, b.samples_per_epoch)));
  if (sb.mean - sa.mean > tolerance) return Order::kAbove;
  if (sa.mean - sb.mean > tolerance) return Order::kBelow;
  return Order::kTied;
}

}  // namespace

ClaimVerdict claim_task1_rope_fastest_best(const ReportData& data, const std::string& setup) {
  auto v = start(
      "task1_rope_fastest_best", "Task 1: RoPE learns fastest and best", setup,
      "Best: RoPE's mean final test accuracy beats every other main PE's by more than max(0.02, "
      "std_RoPE + std_other). Fastest: fewest training samples until the test accuracy first "
      "reaches 0.9 x the PE's own final accuracy; compared among the PEs that learn (final mean - "
      "std > length-only floor + 0.02), 'clearly fewer' = by more than max(std + std, half an "
      "epoch of samples). RoPE clearly ahead of every other PE on both -> holds; some PE clearly "
      "ahead of RoPE on either -> does not hold; otherwise mixed.");
  const auto cells = measured_cells(data, setup, kTask1, kMainPes);
  if (!cells.count("rope") || cells.size() < 3)
    return not_measured(v, missing_list(cells, kMainPes, kTask1));
  const Cell& rope = *cells.at("rope");
  const bool rope_learns = learns_beyond_length(rope);
  bool beaten = false, always_ahead = rope_learns;
  json against = json::object();
  for (const auto& [pe, c] : cells) {
    if (pe == "rope") continue;
    const Order final_order = compare(rope.final_accuracy, c->final_accuracy);
    const bool other_learns = learns_beyond_length(*c);
    const Order speed_order =
        rope_learns && other_learns ? compare_samples(rope, *c) : Order::kTied;
    beaten |= final_order == Order::kBelow || speed_order == Order::kBelow;
    always_ahead &= final_order == Order::kAbove && (!other_learns || speed_order == Order::kAbove);
    against[pe] = {{"final", stats_json(c->final_accuracy)},
                   {"samples_to_0.9_of_final", stats_json(c->samples_to_share)},
                   {"learns_beyond_length", other_learns}};
  }
  v.evidence["rope"] = {{"final", stats_json(rope.final_accuracy)},
                        {"samples_to_0.9_of_final", stats_json(rope.samples_to_share)},
                        {"learns_beyond_length", rope_learns}};
  v.evidence["length_only"] = rope.length_only_accuracy;
  v.evidence["samples_per_epoch"] = rope.samples_per_epoch;
  v.evidence["others"] = against;
  v.verdict = beaten ? Verdict::kDoesNotHold : always_ahead ? Verdict::kHolds : Verdict::kMixed;
  return v;
}

ClaimVerdict claim_task1_absolute_follow(const ReportData& data, const std::string& setup) {
  auto v = start("task1_absolute_follow",
                 "Task 1: sinusoidal and learned absolute PE follow RoPE (below it, above ALiBi, "
                 "the relative bias and NoPE)",
                 setup,
                 "Per absolute PE: it does not clearly beat RoPE and clearly beats each of ALiBi, "
                 "relative and NoPE (margin rule) -> that part holds; it clearly beats RoPE or is "
                 "clearly beaten by one of them -> fails; otherwise mixed. Parts combined.");
  const auto cells = measured_cells(data, setup, kTask1, kMainPes);
  const std::vector<std::string> weak = {"alibi", "relative", "nope"};
  for (const auto& pe : {"sinusoidal", "learned", "rope"})
    if (!cells.count(pe)) return not_measured(v, missing_list(cells, kMainPes, kTask1));
  std::vector<Verdict> parts;
  for (const auto& pe : {"sinusoidal", "learned"}) {
    const SeedStats& a = cells.at(pe)->final_accuracy;
    bool fails = compare(a, cells.at("rope")->final_accuracy) == Order::kAbove;
    bool clear = true;
    int64_t compared = 0;
    for (const auto& w : weak) {
      if (!cells.count(w)) continue;
      ++compared;
      const Order o = compare(a, cells.at(w)->final_accuracy);
      fails |= o == Order::kBelow;
      clear &= o == Order::kAbove;
    }
    if (compared == 0) return not_measured(v, missing_list(cells, kMainPes, kTask1));
    const Verdict part = fails ? Verdict::kDoesNotHold : clear ? Verdict::kHolds : Verdict::kMixed;
    v.evidence["parts"][pe] = verdict_name(part);
    parts.push_back(part);
  }
  v.evidence["accuracy"] = accuracies_json(cells);
  v.verdict = combine(parts);
  return v;
}

ClaimVerdict claim_task1_bias_pes_fail(const ReportData& data, const std::string& setup) {
  auto v = start("task1_bias_pes_fail", "Task 1: ALiBi and the relative bias fail", setup,
                 "Per PE: mean + std below 0.5 x the best main PE's mean -> fails (part holds); "
                 "mean - std at or above it -> succeeds (part does not hold); otherwise mixed. "
                 "Parts combined.");
  const auto cells = measured_cells(data, setup, kTask1, kMainPes);
  if (!cells.count("alibi") || !cells.count("relative") || cells.size() < 3)
    return not_measured(v, missing_list(cells, kMainPes, kTask1));
  const Cell* best = best_of(cells);
  const double threshold = kFailShare * best->final_accuracy.mean;
  std::vector<Verdict> parts;
  for (const auto& pe : {"alibi", "relative"}) {
    const SeedStats& s = cells.at(pe)->final_accuracy;
    const Verdict part = s.mean + s.std < threshold    ? Verdict::kHolds
                         : s.mean - s.std >= threshold ? Verdict::kDoesNotHold
                                                       : Verdict::kMixed;
    v.evidence["parts"][pe] = verdict_name(part);
    parts.push_back(part);
  }
  v.evidence["best_pe"] = best->pe;
  v.evidence["fail_threshold"] = threshold;
  v.evidence["accuracy"] = accuracies_json(cells);
  v.verdict = combine(parts);
  return v;
}

ClaimVerdict claim_task1_nope_at_chance(const ReportData& data, const std::string& setup) {
  auto v = start("task1_nope_at_chance",
                 "Task 1: NoPE stays at chance (learns nothing beyond what the sequence length "
                 "gives away)",
                 setup,
                 "floor = the task's length-only Bayes accuracy (exact, from the generator's "
                 "distribution; it is above 1 / labels because the length and the distance are "
                 "correlated). NoPE's mean + std <= floor + 0.02 -> holds; mean - std > floor + "
                 "0.02 -> does not hold; otherwise mixed.");
  const auto cells = measured_cells(data, setup, kTask1, {"nope"});
  if (cells.empty()) return not_measured(v, missing_list(cells, {"nope"}, kTask1));
  const Cell& nope = *cells.at("nope");
  if (!std::isfinite(nope.length_only_accuracy))
    return not_measured(v, "no length-only Bayes accuracy for the NoPE run's task");
  const double ceiling = nope.length_only_accuracy + kMinMargin;
  const SeedStats& s = nope.final_accuracy;
  v.evidence["nope"] = stats_json(s);
  v.evidence["chance"] = nope.chance();
  v.evidence["length_only"] = nope.length_only_accuracy;
  v.evidence["ceiling"] = ceiling;
  v.verdict = s.mean + s.std <= ceiling  ? Verdict::kHolds
              : s.mean - s.std > ceiling ? Verdict::kDoesNotHold
                                         : Verdict::kMixed;
  return v;
}

ClaimVerdict claim_task2_every_pe_counts(const ReportData& data, const std::string& setup) {
  auto v = start("task2_every_pe_counts", "Task 2: every PE can count", setup,
                 "A PE can count when its mean - std >= max(0.5 x the best PE's mean, chance + "
                 "0.05); it cannot when mean + std is below that. Every main PE can -> holds; "
                 "any PE clearly cannot -> does not hold; otherwise mixed.");
  const auto cells = measured_cells(data, setup, kTask2, kMainPes);
  if (cells.size() < kMainPes.size()) return not_measured(v, missing_list(cells, kMainPes, kTask2));
  const Cell* best = best_of(cells);
  const double threshold =
      std::max(kFailShare * best->final_accuracy.mean, best->chance() + kChanceBand);
  bool any_cannot = false, all_can = true;
  for (const auto& [pe, c] : cells) {
    const SeedStats& s = c->final_accuracy;
    any_cannot |= s.mean + s.std < threshold;
    all_can &= s.mean - s.std >= threshold;
  }
  v.evidence["threshold"] = threshold;
  v.evidence["accuracy"] = accuracies_json(cells);
  v.verdict = any_cannot ? Verdict::kDoesNotHold : all_can ? Verdict::kHolds : Verdict::kMixed;
  return v;
}

ClaimVerdict claim_task2_nope_relative_best_alibi_worst(const ReportData& data,
                                                        const std::string& setup) {
  auto v = start("task2_nope_relative_best_alibi_worst",
                 "Task 2: NoPE and the relative bias are among the best; ALiBi is worst", setup,
                 "Part per NoPE and relative: not clearly beaten by the best main PE (margin rule) "
                 "-> holds, else fails. Part ALiBi: clearly beaten by every other PE -> holds; "
                 "clearly beats some PE -> fails; otherwise mixed. Parts combined.");
  const auto cells = measured_cells(data, setup, kTask2, kMainPes);
  if (cells.size() < kMainPes.size()) return not_measured(v, missing_list(cells, kMainPes, kTask2));
  const Cell* best = best_of(cells);
  std::vector<Verdict> parts;
  for (const auto& pe : {"nope", "relative"}) {
    const bool beaten =
        compare(cells.at(pe)->final_accuracy, best->final_accuracy) == Order::kBelow;
    parts.push_back(beaten ? Verdict::kDoesNotHold : Verdict::kHolds);
    v.evidence["parts"][std::string(pe) + "_among_best"] = verdict_name(parts.back());
  }
  bool alibi_beats_some = false, alibi_below_all = true;
  for (const auto& [pe, c] : cells) {
    if (pe == "alibi") continue;
    const Order o = compare(cells.at("alibi")->final_accuracy, c->final_accuracy);
    alibi_beats_some |= o == Order::kAbove;
    alibi_below_all &= o == Order::kBelow;
  }
  parts.push_back(alibi_beats_some  ? Verdict::kDoesNotHold
                  : alibi_below_all ? Verdict::kHolds
                                    : Verdict::kMixed);
  v.evidence["parts"]["alibi_worst"] = verdict_name(parts.back());
  v.evidence["best_pe"] = best->pe;
  v.evidence["accuracy"] = accuracies_json(cells);
  v.verdict = combine(parts);
  return v;
}

ClaimVerdict claim_task2_rope_not_best(const ReportData& data, const std::string& setup) {
  auto v = start("task2_rope_not_best", "Task 2: RoPE is not the best", setup,
                 "Some main PE clearly beats RoPE (margin rule) -> holds; RoPE clearly beats every "
                 "other -> does not hold; otherwise mixed.");
  const auto cells = measured_cells(data, setup, kTask2, kMainPes);
  if (!cells.count("rope") || cells.size() < 3)
    return not_measured(v, missing_list(cells, kMainPes, kTask2));
  bool someone_above = false, rope_above_all = true;
  for (const auto& [pe, c] : cells) {
    if (pe == "rope") continue;
    const Order o = compare(cells.at("rope")->final_accuracy, c->final_accuracy);
    someone_above |= o == Order::kBelow;
    rope_above_all &= o == Order::kAbove;
  }
  v.evidence["accuracy"] = accuracies_json(cells);
  v.verdict = someone_above    ? Verdict::kHolds
              : rope_above_all ? Verdict::kDoesNotHold
                               : Verdict::kMixed;
  return v;
}

std::vector<ClaimVerdict> evaluate_claims(const ReportData& data) {
  using ClaimFunction = ClaimVerdict (*)(const ReportData&, const std::string&);
  const ClaimFunction claims[] = {claim_task1_rope_fastest_best,
                                  claim_task1_absolute_follow,
                                  claim_task1_bias_pes_fail,
                                  claim_task1_nope_at_chance,
                                  claim_task2_every_pe_counts,
                                  claim_task2_nope_relative_best_alibi_worst,
                                  claim_task2_rope_not_best,
                                  claim_deposit_rope_task1_layer1,
                                  claim_no_deposit_nope_task1_rope_task2,
                                  claim_absolute_broad_dependence,
                                  claim_rope_abs_deposit_layer2,
                                  claim_rope_heads,
                                  claim_mla,
                                  claim_removal_absolute,
                                  claim_removal_rope_abs,
                                  claim_spectral_contraction};
  std::vector<ClaimVerdict> out;
  for (const auto& setup : data.setups)
    for (const auto claim : claims) {
      out.push_back(claim(data, setup));
      out.back().paper = paper_for_claim(out.back().id);
      out.back().scale = data.scale;
    }
  return out;
}

std::string claims_to_json(const std::vector<ClaimVerdict>& claims) {
  json out = json::array();
  for (const auto& c : claims)
    out.push_back({{"id", c.id},
                   {"claim", c.claim},
                   {"setup", c.setup},
                   {"scale", c.scale},
                   {"verdict", verdict_name(c.verdict)},
                   {"rule", c.rule},
                   {"evidence", c.evidence},
                   {"paper", c.paper}});
  return out.dump(2);
}

}  // namespace pelab
