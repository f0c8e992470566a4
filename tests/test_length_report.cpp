// The length and probes experiments: their plans and sweeps, the rank correlation and the verdict
// on "a single-head deposit predicts poor length generalization", and the report section.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "pe/pe.h"
#include "report/length_section.h"
#include "reproduce/length_experiment.h"

namespace pelab {
namespace {

namespace fs = std::filesystem;

TEST(LengthPlans, ShippedPlansLoadAndExpandToTheirGrids) {
  const ReproducePlan length = load_plan("length", PELAB_SOURCE_DIR);
  EXPECT_EQ(length.experiments, (std::vector<std::string>{"length"}));
  EXPECT_EQ(length.length_factors, (std::vector<double>{1, 1.5, 2, 3, 4}));
  ReproduceOptions options;
  options.out_dir = "runs/x";
  const auto sweeps = reproduce_sweeps(length, "standard", options);
  ASSERT_EQ(sweeps.size(), 1u);
  EXPECT_EQ(sweeps[0].name, "length-standard-length");
  EXPECT_EQ(sweeps[0].grid[0].second, pe_names());  // every registered PE
  EXPECT_EQ(sweeps[0].grid[1].second, (std::vector<std::string>{"distance", "count"}));

  const ReproducePlan probes = load_plan("probes", PELAB_SOURCE_DIR);
  const auto probe_sweeps = reproduce_sweeps(probes, "faithful", options);
  ASSERT_EQ(probe_sweeps.size(), 1u);
  EXPECT_EQ(probe_sweeps[0].grid[0].second.size(), 8u);
  EXPECT_EQ(probe_sweeps[0].grid[1].second,
            (std::vector<std::string>{"recall", "first", "order", "offset"}));
  EXPECT_EQ(probe_sweeps[0].grid[2].second, (std::vector<std::string>{"0", "1"}));
}

TEST(LengthPlans, BadExperimentKeysAreRefused) {
  const fs::path dir = fs::path(::testing::TempDir()) / "pelab_length_plans";
  fs::create_directories(dir);
  const auto write = [&](const std::string& text) {
    std::ofstream(dir / "p.toml") << "base = \"" << PELAB_SOURCE_DIR << "/configs/tiny.toml\"\n"
                                  << text;
    return (dir / "p.toml").string();
  };
  for (const auto& [text, needle] : std::vector<std::pair<std::string, std::string>>{
           {"experiments = [\"lengthy\"]\n",
            "accepted: main, rope_abs, k_heads, mla, zoo, length, probes"},
           {"length_factors = [0.5, 2]\n", "numbers >= 1"},
           {"tasks = [1, 2]\n", "a non-string"}}) {
    try {
      load_plan(write(text), ".");
      ADD_FAILURE() << text;
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  }
}

TEST(LengthVerdict, SpearmanAgainstHandComputedRanks) {
  // x ranks 0 1 2 3, y ranks 3 2 1 0: rho = -1; ties get their mean rank.
  EXPECT_NEAR(spearman_correlation({0.1, 0.2, 0.3, 0.4}, {9, 7, 5, 1}), -1.0, 1e-12);
  EXPECT_NEAR(spearman_correlation({1, 2, 3, 4, 5}, {2, 1, 4, 3, 5}), 0.8, 1e-12);
  // x = {1, 1, 2}: ranks {0.5, 0.5, 2}; y = {1, 2, 3}: ranks {0, 1, 2}. Pearson of the ranks:
  // dx = {-0.5, -0.5, 1}, dy = {-1, 0, 1}: sxy = 1.5, sxx = 1.5, syy = 2 -> 1.5 / sqrt(3).
  EXPECT_NEAR(spearman_correlation({1, 1, 2}, {1, 2, 3}), 1.5 / std::sqrt(3.0), 1e-12);
  EXPECT_TRUE(std::isnan(spearman_correlation({1, 1, 1}, {1, 2, 3})));
  EXPECT_TRUE(std::isnan(spearman_correlation({1, 2}, {1, 2})));
}

LengthRun run_with(double share, bool deposit, double acc1, double acc2) {
  LengthRun r;
  r.setup = "standard";
  r.pe = "rope";
  r.task = "distance";
  r.has_ablation = true;
  r.layer1_share = share;
  r.layer1_single_head = deposit;
  r.lengths.train_length = 48;
  r.lengths.points = {{48, acc1, 0, 100}, {96, acc2, 0, 100}};
  return r;
}

TEST(LengthVerdict, HoldsFailsMixedAndNotMeasured) {
  // Deposits keep 0.5, the rest 0.9, and the share ranks opposite to kept: holds.
  std::vector<LengthRun> runs;
  for (int i = 0; i < 3; ++i) runs.push_back(run_with(0.8 + 0.05 * i, true, 0.9, 0.45 - 0.01 * i));
  for (int i = 0; i < 3; ++i) runs.push_back(run_with(0.3 + 0.05 * i, false, 0.9, 0.81 - 0.01 * i));
  auto v = deposit_length_verdict(runs);
  EXPECT_EQ(v.verdict, Verdict::kHolds) << v.evidence;
  EXPECT_EQ(v.with_deposit, 3);
  EXPECT_NEAR(v.kept_with, (0.45 + 0.44 + 0.43) / 3 / 0.9, 1e-12);
  // The deposit group keeps more: does not hold.
  for (auto& r : runs) r.layer1_single_head = !r.layer1_single_head;
  for (auto& r : runs) r.layer1_share = 1.0 - r.layer1_share;
  EXPECT_EQ(deposit_length_verdict(runs).verdict, Verdict::kDoesNotHold);
  // A small gap with a negative rank correlation: mixed.
  runs.clear();
  for (int i = 0; i < 3; ++i) runs.push_back(run_with(0.8 + 0.05 * i, true, 0.9, 0.80 - 0.001 * i));
  for (int i = 0; i < 3; ++i)
    runs.push_back(run_with(0.3 + 0.05 * i, false, 0.9, 0.82 - 0.001 * i));
  EXPECT_EQ(deposit_length_verdict(runs).verdict, Verdict::kMixed);
  // Runs that did not learn (accuracy < 0.5 at 1x) do not count: too few left.
  for (auto& r : runs) r.lengths.points[0].accuracy = 0.3;
  const auto none = deposit_length_verdict(runs);
  EXPECT_EQ(none.verdict, Verdict::kNotMeasured);
  EXPECT_EQ(none.with_deposit + none.without_deposit, 0);
}

TEST(LengthVerdict, KeptReadsTheFactorsPoints) {
  LengthRun r = run_with(0.5, false, 0.8, 0.4);
  EXPECT_DOUBLE_EQ(r.kept(2.0), 0.5);
  EXPECT_TRUE(std::isnan(r.kept(4.0)));
}

}  // namespace
}  // namespace pelab
