// The verdict rules on synthetic result sets built in code: a case where the claim holds, one
// where it does not, overlapping spreads, and missing data, for each kind of rule.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "report/claims.h"

using namespace pelab;

namespace {

const std::string kSetup = "faithful";

Cell make_cell(const std::string& pe, const std::string& task, const std::vector<double>& finals,
               int64_t rotary_heads = -1) {
  Cell c;
  c.setup = kSetup;
  c.pe = pe;
  c.task = task;
  c.rotary_heads = rotary_heads;
  c.n_heads = 4;
  c.n_layers = 2;
  c.label_count = task == kTask1 ? 70 : 101;
  for (size_t i = 0; i < finals.size(); ++i) {
    c.run_ids.push_back(int64_t(i + 1));
    c.seeds.push_back(int64_t(i));
  }
  c.final_accuracy = SeedStats::of(finals);
  c.curve_accuracy = SeedStats::of(finals);  // curves ordered like the finals
  // Every PE reaches 0.9 x its final accuracy after 4 epochs of 1,000 samples unless a test
  // says otherwise; the floor is the paper's Task 1 length-only Bayes accuracy.
  c.samples_per_epoch = 1000;
  c.samples_to_share = SeedStats::of(std::vector<double>(finals.size(), 4000.0));
  if (task == kTask1) c.length_only_accuracy = 0.0537;
  return c;
}

ReportData data_with(std::vector<Cell> cells) {
  ReportData d;
  d.scale = "tiny";
  d.setups = {kSetup};
  d.cells = std::move(cells);
  return d;
}

// Task 1 main PEs with RoPE clearly best (three seeds each).
std::vector<Cell> task1_rope_best() {
  Cell rope = make_cell("rope", kTask1, {0.90, 0.91, 0.92});
  rope.samples_to_share = SeedStats::of({2000, 2000, 3000});
  return {rope,
          make_cell("sinusoidal", kTask1, {0.70, 0.71, 0.69}),
          make_cell("learned", kTask1, {0.66, 0.68, 0.67}),
          make_cell("relative", kTask1, {0.10, 0.12, 0.11}),
          make_cell("alibi", kTask1, {0.05, 0.06, 0.07}),
          make_cell("nope", kTask1, {0.02, 0.02, 0.03})};
}

// A [2 layers][4 heads] ablation; `deposit_layer` (or -1) has one head that halves accuracy.
HeadAblation ablation(int64_t seed, int64_t deposit_layer, double baseline = 0.9) {
  HeadAblation a;
  a.seed = seed;
  a.method = "value";
  a.baseline_accuracy = baseline;
  a.accuracy = {{0.89, 0.89, 0.89, 0.89}, {0.89, 0.89, 0.89, 0.89}};
  for (int64_t l = 0; l < 2; ++l) {
    LayerDeposit d;
    d.layer = l;
    d.worst_head = 1;
    d.drop = 0.01;
    d.share = 0.25;
    if (l == deposit_layer) {
      a.accuracy[l][1] = baseline / 2;
      d.drop = baseline / 2;
      d.share = 0.95;
      d.single_head_deposit = true;
    }
    a.deposits.push_back(d);
  }
  return a;
}

PositionRemoval removal(int64_t seed, int64_t layers, double without_position) {
  PositionRemoval r;
  r.seed = seed;
  r.baseline_accuracy = 0.7;
  for (int64_t l = 0; l < layers; ++l)
    r.layers.push_back({l, without_position, {0.68, 0.69, 0.70}, 0.69, 0.01});
  return r;
}

SpectrumData spectrum(const std::string& pe, const std::string& kind, double ratio,
                      bool holds = true) {
  SpectrumData s;
  s.setup = kSetup;
  s.pe = pe;
  for (int i = 0; i < 3; ++i)
    s.checks.push_back({"random draw", kind, "K", holds, 10.0, 10.0 * ratio, ratio});
  return s;
}

}  // namespace

TEST(ClaimRules, MarginUsesTheSeedsSpread) {
  const auto a = SeedStats::of({0.50}), b = SeedStats::of({0.49}), c = SeedStats::of({0.45});
  EXPECT_EQ(compare(a, b), Order::kTied);  // 0.01 < the 0.02 floor
  EXPECT_EQ(compare(a, c), Order::kAbove);
  EXPECT_EQ(compare(c, a), Order::kBelow);
  // The same 0.05 difference with wide spreads is no longer clear.
  const auto wide_a = SeedStats::of({0.40, 0.60}), wide_c = SeedStats::of({0.35, 0.55});
  EXPECT_GT(margin(wide_a, wide_c), 0.05);
  EXPECT_EQ(compare(wide_a, wide_c), Order::kTied);
}

TEST(ClaimRules, ShareAndCombine) {
  EXPECT_EQ(by_share(3, 3), Verdict::kHolds);
  EXPECT_EQ(by_share(0, 3), Verdict::kDoesNotHold);
  EXPECT_EQ(by_share(1, 3), Verdict::kMixed);
  EXPECT_EQ(by_share(0, 0), Verdict::kNotMeasured);
  EXPECT_EQ(combine({Verdict::kHolds, Verdict::kHolds}), Verdict::kHolds);
  EXPECT_EQ(combine({Verdict::kDoesNotHold, Verdict::kDoesNotHold}), Verdict::kDoesNotHold);
  EXPECT_EQ(combine({Verdict::kHolds, Verdict::kDoesNotHold}), Verdict::kMixed);
  EXPECT_EQ(combine({Verdict::kHolds, Verdict::kNotMeasured}), Verdict::kNotMeasured);
  EXPECT_EQ(verdict_name(Verdict::kDoesNotHold), "does not hold");
}

TEST(ClaimRules, RopeBestOnTask1) {
  EXPECT_EQ(claim_task1_rope_fastest_best(data_with(task1_rope_best()), kSetup).verdict,
            Verdict::kHolds);
  auto cells = task1_rope_best();
  cells[1] = make_cell("sinusoidal", kTask1, {0.97, 0.98, 0.97});  // clearly above RoPE
  EXPECT_EQ(claim_task1_rope_fastest_best(data_with(cells), kSetup).verdict, Verdict::kDoesNotHold);
  cells[1] = make_cell("sinusoidal", kTask1, {0.80, 0.95, 0.90});  // spreads overlap
  EXPECT_EQ(claim_task1_rope_fastest_best(data_with(cells), kSetup).verdict, Verdict::kMixed);
  // Best but not fastest: a PE that learns reaches 0.9 x its own final accuracy clearly sooner.
  cells = task1_rope_best();
  cells[1].samples_to_share = SeedStats::of({1000, 1000, 1000});
  EXPECT_EQ(claim_task1_rope_fastest_best(data_with(cells), kSetup).verdict, Verdict::kDoesNotHold);
  // Within half an epoch of RoPE: tied on speed, so only mixed.
  cells[1].samples_to_share = SeedStats::of({2000, 2000, 2700});
  EXPECT_EQ(claim_task1_rope_fastest_best(data_with(cells), kSetup).verdict, Verdict::kMixed);
  // A PE that does not learn beyond the length floor is quick to its own low final accuracy;
  // that does not make it fast.
  cells = task1_rope_best();
  cells[5].samples_to_share = SeedStats::of({1000, 1000, 1000});  // NoPE
  EXPECT_EQ(claim_task1_rope_fastest_best(data_with(cells), kSetup).verdict, Verdict::kHolds);
  cells.erase(cells.begin());  // no RoPE
  const auto missing = claim_task1_rope_fastest_best(data_with(cells), kSetup);
  EXPECT_EQ(missing.verdict, Verdict::kNotMeasured);
  EXPECT_NE(missing.evidence["missing"].get<std::string>().find("rope"), std::string::npos);
  EXPECT_EQ(claim_task1_rope_fastest_best(ReportData{}, kSetup).verdict, Verdict::kNotMeasured);
}

TEST(ClaimRules, Task1Ranking) {
  const auto data = data_with(task1_rope_best());
  EXPECT_EQ(claim_task1_absolute_follow(data, kSetup).verdict, Verdict::kHolds);
  EXPECT_EQ(claim_task1_bias_pes_fail(data, kSetup).verdict, Verdict::kHolds);
  EXPECT_EQ(claim_task1_nope_at_chance(data, kSetup).verdict, Verdict::kHolds);
  auto cells = task1_rope_best();
  cells[3] = make_cell("relative", kTask1, {0.80, 0.82, 0.81});  // relative succeeds
  cells[5] = make_cell("nope", kTask1, {0.30, 0.31, 0.29});      // NoPE above chance
  const auto changed = data_with(cells);
  EXPECT_EQ(claim_task1_bias_pes_fail(changed, kSetup).verdict, Verdict::kMixed);
  EXPECT_EQ(claim_task1_nope_at_chance(changed, kSetup).verdict, Verdict::kDoesNotHold);
  // Judged against the length-only floor, not 1 / labels: 0.06 is above chance (0.014) but
  // below the floor 0.0537 + 0.02.
  cells[5] = make_cell("nope", kTask1, {0.06, 0.06, 0.065});
  const auto nope_at_floor = claim_task1_nope_at_chance(data_with(cells), kSetup);
  EXPECT_EQ(nope_at_floor.verdict, Verdict::kHolds);
  EXPECT_DOUBLE_EQ(nope_at_floor.evidence["length_only"].get<double>(), 0.0537);
  cells[5] = make_cell("nope", kTask1, {0.07, 0.08, 0.075});  // the spread straddles the floor
  EXPECT_EQ(claim_task1_nope_at_chance(data_with(cells), kSetup).verdict, Verdict::kMixed);
  EXPECT_EQ(claim_task1_absolute_follow(changed, kSetup).verdict, Verdict::kDoesNotHold);
}

TEST(ClaimRules, Task2Counting) {
  std::vector<Cell> cells = {
      make_cell("nope", kTask2, {0.95, 0.96}),       make_cell("relative", kTask2, {0.94, 0.95}),
      make_cell("sinusoidal", kTask2, {0.90, 0.90}), make_cell("learned", kTask2, {0.90, 0.91}),
      make_cell("rope", kTask2, {0.85, 0.86}),       make_cell("alibi", kTask2, {0.60, 0.61})};
  EXPECT_EQ(claim_task2_every_pe_counts(data_with(cells), kSetup).verdict, Verdict::kHolds);
  EXPECT_EQ(claim_task2_nope_relative_best_alibi_worst(data_with(cells), kSetup).verdict,
            Verdict::kHolds);
  EXPECT_EQ(claim_task2_rope_not_best(data_with(cells), kSetup).verdict, Verdict::kHolds);
  cells[4] = make_cell("rope", kTask2, {0.99, 0.99});
  cells[5] = make_cell("alibi", kTask2, {0.05, 0.06});  // cannot count
  EXPECT_EQ(claim_task2_rope_not_best(data_with(cells), kSetup).verdict, Verdict::kDoesNotHold);
  EXPECT_EQ(claim_task2_every_pe_counts(data_with(cells), kSetup).verdict, Verdict::kDoesNotHold);
  cells.pop_back();
  EXPECT_EQ(claim_task2_every_pe_counts(data_with(cells), kSetup).verdict, Verdict::kNotMeasured);
}

TEST(ClaimRules, DepositsBySeed) {
  auto rope = make_cell("rope", kTask1, {0.9, 0.9});
  rope.ablations = {ablation(0, 0), ablation(1, 0)};
  EXPECT_EQ(claim_deposit_rope_task1_layer1(data_with({rope}), kSetup).verdict, Verdict::kHolds);
  rope.ablations[1] = ablation(1, -1);
  EXPECT_EQ(claim_deposit_rope_task1_layer1(data_with({rope}), kSetup).verdict, Verdict::kMixed);
  rope.ablations = {ablation(0, 1)};  // deposit in layer 2 instead
  EXPECT_EQ(claim_deposit_rope_task1_layer1(data_with({rope}), kSetup).verdict,
            Verdict::kDoesNotHold);
  rope.ablations.clear();
  EXPECT_EQ(claim_deposit_rope_task1_layer1(data_with({rope}), kSetup).verdict,
            Verdict::kNotMeasured);

  auto rope_abs = make_cell("rope_abs", kTask1, {0.85});
  rope_abs.ablations = {ablation(0, 1)};
  EXPECT_EQ(claim_rope_abs_deposit_layer2(data_with({rope_abs}), kSetup).verdict, Verdict::kHolds);

  auto nope = make_cell("nope", kTask1, {0.02});
  nope.ablations = {ablation(0, -1)};
  auto rope_count = make_cell("rope", kTask2, {0.8});
  rope_count.ablations = {ablation(0, -1)};
  EXPECT_EQ(claim_no_deposit_nope_task1_rope_task2(data_with({nope, rope_count}), kSetup).verdict,
            Verdict::kHolds);
  rope_count.ablations = {ablation(0, 0)};
  EXPECT_EQ(claim_no_deposit_nope_task1_rope_task2(data_with({nope, rope_count}), kSetup).verdict,
            Verdict::kMixed);

  // Broad: several heads matter, none alone.
  auto sinusoidal = make_cell("sinusoidal", kTask1, {0.7});
  sinusoidal.ablations = {ablation(0, -1, 0.7)};
  sinusoidal.ablations[0].accuracy = {{0.6, 0.6, 0.6, 0.6}, {0.69, 0.69, 0.69, 0.69}};
  auto learned = sinusoidal;
  learned.pe = "learned";
  EXPECT_EQ(claim_absolute_broad_dependence(data_with({sinusoidal, learned}), kSetup).verdict,
            Verdict::kHolds);
  learned.ablations = {ablation(0, 0, 0.7)};
  EXPECT_EQ(claim_absolute_broad_dependence(data_with({sinusoidal, learned}), kSetup).verdict,
            Verdict::kMixed);
}

TEST(ClaimRules, RotaryHeads) {
  std::vector<Cell> cells = {
      make_cell("rope", kTask1, {0.90, 0.92}), make_cell("rope", kTask1, {0.02, 0.02}, 0),
      make_cell("rope", kTask1, {0.45, 0.47}, 1), make_cell("rope", kTask1, {0.85, 0.86}, 2),
      make_cell("rope", kTask1, {0.90, 0.90}, 3)};
  const auto v = claim_rope_heads(data_with(cells), kSetup);
  EXPECT_EQ(v.verdict, Verdict::kHolds) << v.evidence.dump();
  cells[2] = make_cell("rope", kTask1, {0.90, 0.91}, 1);  // one head is already enough
  EXPECT_EQ(claim_rope_heads(data_with(cells), kSetup).verdict, Verdict::kMixed);
  cells[3] = make_cell("rope", kTask1, {0.30, 0.31}, 2);
  cells[4] = make_cell("rope", kTask1, {0.40, 0.41}, 3);
  cells[2] = make_cell("rope", kTask1, {0.10, 0.11}, 1);
  EXPECT_EQ(claim_rope_heads(data_with(cells), kSetup).verdict, Verdict::kMixed);
  cells.erase(cells.begin() + 2);
  EXPECT_EQ(claim_rope_heads(data_with(cells), kSetup).verdict, Verdict::kNotMeasured);
}

TEST(ClaimRules, Mla) {
  auto mla1 = make_cell("mla", kTask1, {0.88, 0.89});
  auto mla2 = make_cell("mla", kTask2, {0.97, 0.98});
  mla1.ablations = {ablation(0, -1)};
  mla2.ablations = {ablation(0, -1)};
  std::vector<Cell> cells = {make_cell("rope", kTask1, {0.90, 0.91}),
                             make_cell("rope", kTask2, {0.85, 0.86}), mla1, mla2};
  EXPECT_EQ(claim_mla(data_with(cells), kSetup).verdict, Verdict::kHolds);
  cells[2] = make_cell("mla", kTask1, {0.20, 0.21});
  cells[3] = make_cell("mla", kTask2, {0.50, 0.51});
  cells[2].ablations = {ablation(0, 0)};
  EXPECT_EQ(claim_mla(data_with(cells), kSetup).verdict, Verdict::kDoesNotHold);
  cells.pop_back();
  EXPECT_EQ(claim_mla(data_with(cells), kSetup).verdict, Verdict::kNotMeasured);
}

TEST(ClaimRules, PositionRemoval) {
  auto sinusoidal = make_cell("sinusoidal", kTask1, {0.7, 0.7});
  sinusoidal.removals = {removal(0, 2, 0.1), removal(1, 2, 0.1)};
  auto learned = make_cell("learned", kTask1, {0.7});
  learned.removals = {removal(0, 2, 0.1)};
  EXPECT_EQ(claim_removal_absolute(data_with({sinusoidal, learned}), kSetup).verdict,
            Verdict::kHolds);
  learned.removals = {removal(0, 2, 0.68)};  // within the random directions' spread
  EXPECT_EQ(claim_removal_absolute(data_with({sinusoidal, learned}), kSetup).verdict,
            Verdict::kMixed);
  EXPECT_EQ(claim_removal_absolute(data_with({sinusoidal}), kSetup).verdict, Verdict::kNotMeasured);

  auto rope_abs = make_cell("rope_abs", kTask1, {0.8});
  rope_abs.removals = {removal(0, 2, 0.1)};
  EXPECT_EQ(claim_removal_rope_abs(data_with({rope_abs}), kSetup).verdict, Verdict::kNotMeasured);
  rope_abs.n_layers = 4;
  rope_abs.removals = {removal(0, 4, 0.69)};
  rope_abs.removals[0].layers[0].accuracy_without_position = 0.1;
  rope_abs.removals[0].layers[1].accuracy_without_position = 0.3;
  EXPECT_EQ(claim_removal_rope_abs(data_with({rope_abs}), kSetup).verdict, Verdict::kHolds);
  rope_abs.removals[0].layers[3].accuracy_without_position = 0.1;  // still differs in layer 4
  EXPECT_EQ(claim_removal_rope_abs(data_with({rope_abs}), kSetup).verdict, Verdict::kDoesNotHold);
}

TEST(ClaimRules, SpectralContraction) {
  auto data = data_with({});
  data.spectra = {spectrum("rope", "schur", 0.5), spectrum("alibi", "weyl", 3.0),
                  spectrum("relative", "weyl", 0.9)};
  EXPECT_EQ(claim_spectral_contraction(data, kSetup).verdict, Verdict::kHolds);
  data.spectra[1] = spectrum("alibi", "weyl", 0.8);  // no additive bias widens
  EXPECT_EQ(claim_spectral_contraction(data, kSetup).verdict, Verdict::kMixed);
  data.spectra[0] = spectrum("rope", "schur", 1.5, false);
  EXPECT_EQ(claim_spectral_contraction(data, kSetup).verdict, Verdict::kDoesNotHold);
  data.spectra.erase(data.spectra.begin());
  EXPECT_EQ(claim_spectral_contraction(data, kSetup).verdict, Verdict::kNotMeasured);
}

TEST(ClaimRules, EveryClaimPerSetupAndAsJson) {
  auto data = data_with(task1_rope_best());
  data.setups = {"faithful", "standard"};
  const auto claims = evaluate_claims(data);
  ASSERT_EQ(claims.size(), 32u);
  const auto j = nlohmann::json::parse(claims_to_json(claims));
  ASSERT_TRUE(j.is_array());
  EXPECT_EQ(j[0]["id"], "task1_rope_fastest_best");
  EXPECT_EQ(j[0]["setup"], "faithful");
  EXPECT_EQ(j[0]["verdict"], "holds");
  EXPECT_TRUE(j[0]["evidence"].contains("rope"));
  EXPECT_EQ(j[16]["setup"], "standard");
  EXPECT_EQ(j[16]["verdict"], "not measured");  // no standard cells
  for (const auto& c : j) EXPECT_FALSE(c["rule"].get<std::string>().empty()) << c["id"];
}

TEST(ClaimRules, DocumentedInClaimsMd) {
  std::ifstream file(std::string(PELAB_SOURCE_DIR) + "/docs/CLAIMS.md");
  ASSERT_TRUE(file) << "docs/CLAIMS.md is missing";
  std::stringstream text;
  text << file.rdbuf();
  auto data = data_with({});
  for (const auto& c : evaluate_claims(data))
    EXPECT_NE(text.str().find("`" + c.id + "`"), std::string::npos)
        << "docs/CLAIMS.md does not document " << c.id;
}
