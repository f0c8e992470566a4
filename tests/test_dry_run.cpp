// The scales as plans: `pelab reproduce --scale S --dry-run` lists the runs, their samples and the
// estimated hours, and the paper-shape plans hold what the claims need (reproduce/dry_run.h).
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "cli_runner.h"
#include "reproduce/dry_run.h"
#include "sweep/sweep_spec.h"

namespace fs = std::filesystem;
using namespace pelab;
using pelab::test_cli::run;

namespace {

ReproducePlan plan_of(const std::string& scale) {
  return load_plan(std::string(PELAB_SOURCE_DIR) + "/configs/reproduce/" + scale + ".toml",
                   PELAB_SOURCE_DIR);
}

DryRun dry_run_of(const ReproducePlan& plan) {
  ReproduceOptions options;
  options.out_dir = "unused";
  options.setups = setup_names();
  return plan_dry_run(plan, options);
}

}  // namespace

TEST(DryRun, PaperShapeHasThePapersModelAndEveryRunTheClaimsNeed) {
  const ReproducePlan plan = plan_of("paper-shape");
  ReproduceOptions options;
  options.out_dir = "unused";
  std::map<std::string, std::set<std::string>> pes_by_task;
  std::set<int64_t> partial_heads;
  std::set<int64_t> seeds;
  for (const auto& setup : setup_names())
    for (const auto& spec : reproduce_sweeps(plan, setup, options))
      for (const auto& r : expand_sweep(spec, 1)) {
        const Config& c = r.config;
        EXPECT_EQ(c.model.d_model, 256);
        EXPECT_EQ(c.model.n_heads, 16);
        EXPECT_EQ(c.model.n_layers, 6);
        EXPECT_EQ(c.model.d_ff, 512);
        EXPECT_GT(c.train.patience, 0);
        EXPECT_GT(c.train.validation_fraction, 0);
        if (c.task.name == "distance") {
          EXPECT_GE(c.task.distance_between_max - c.task.distance_between_min + 1, 24);
        }
        pes_by_task[c.task.name].insert(c.model.pe);
        if (c.model.rotary_heads >= 0 && c.model.rotary_heads < 16)
          partial_heads.insert(c.model.rotary_heads);
        seeds.insert(c.train.seed);
      }
  const std::set<std::string> task1{"nope",  "sinusoidal", "learned",  "relative",
                                    "alibi", "rope",       "rope_abs", "mla"};
  EXPECT_EQ(pes_by_task["distance"], task1);
  for (const auto& pe : {"nope", "sinusoidal", "learned", "relative", "alibi", "rope", "mla"})
    EXPECT_TRUE(pes_by_task["count"].count(pe)) << pe;
  for (int64_t k : {1, 2, 4}) EXPECT_TRUE(partial_heads.count(k)) << k;
  EXPECT_GE(seeds.size(), 2u);
}

TEST(DryRun, CountsSamplesAndHoursFromTheMeasuredSpeed) {
  const ReproducePlan plan = plan_of("paper-shape-core");
  const DryRun dry = dry_run_of(plan);
  // RoPE and NoPE (main) and rope_abs on Task 1, two setups, two seeds.
  ASSERT_EQ(dry.runs.size(), 12u);
  // 20,000 samples: 14,000 train, less a 10% validation set.
  for (const auto& r : dry.runs) {
    EXPECT_EQ(r.samples_per_epoch, 12600);
    EXPECT_EQ(r.ceiling_epochs, 20);
    EXPECT_EQ(r.expected_epochs, plan.expected_epochs);
  }
  EXPECT_EQ(dry.ceiling_samples(), 12 * 12600 * 20);
  EXPECT_EQ(dry.expected_samples(), 12 * 12600 * plan.expected_epochs);
  // Analyses on 2,000 sequences, in forward passes: the baseline plus 16 heads x (6 + 5 + ... +
  // 1) / 6 layers of branches; rope_abs adds the removal, (1 + 5 draws) x (6 + ... + 1) / 6.
  const int64_t ablation = 2000 + 2000 * 16 * 21 / 6, removal = 2000 * 6 * 21 / 6;
  EXPECT_EQ(dry.analysis_samples(), 12 * ablation + 4 * removal);
  const double expected_hours =
      (double(dry.expected_samples()) / (plan.train_samples_per_s * double(plan.workers)) +
       double(dry.analysis_samples()) / (3 * plan.train_samples_per_s)) /
      3600;
  EXPECT_NEAR(dry.hours(dry.expected_samples(), dry.analysis_samples()), expected_hours, 1e-9);
  // Without a measured speed there are no hours.
  ReproducePlan unmeasured = plan;
  unmeasured.train_samples_per_s = 0;
  EXPECT_TRUE(std::isnan(dry_run_of(unmeasured).hours(1, 1)));
}

TEST(DryRun, SmallIsConvergedByTheRule) {
  const DryRun dry = dry_run_of(plan_of("small"));
  ASSERT_FALSE(dry.runs.empty());
  ReproduceOptions options;
  options.out_dir = "unused";
  const ReproducePlan plan = plan_of("small");
  for (const auto& spec : reproduce_sweeps(plan, "standard", options))
    for (const auto& r : expand_sweep(spec, 1)) {
      EXPECT_GT(r.config.train.patience, 0) << r.name;
      EXPECT_GT(r.config.train.validation_fraction, 0) << r.name;
    }
}

TEST(DryRun, CommandLinePrintsRunsAndTrainsNothing) {
  const fs::path dir = fs::path(::testing::TempDir()) / "pelab_dry_run";
  fs::remove_all(dir);
  const auto r =
      run(fmt::format("reproduce --scale {}/configs/reproduce/paper-shape-core.toml "
                      "--dry-run --out {} --store {}",
                      PELAB_SOURCE_DIR, (dir / "runs").string(), (dir / "store.db").string()));
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("scale paper-shape-core: 12 runs"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("paper-shape-core-standard-rope_abs"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("estimated time on this machine at 85"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(dir / "store.db"));
  EXPECT_FALSE(fs::exists(dir / "runs"));
}

TEST(DryRun, BadPlanListsAreRefusedWithTheirKey) {
  const fs::path dir = fs::path(::testing::TempDir()) / "pelab_dry_run_bad";
  fs::create_directories(dir);
  auto write = [&](const std::string& text) {
    std::ofstream(dir / "plan.toml") << text;
    return (dir / "plan.toml").string();
  };
  for (const char* bad : {"experiments = [\"everything\"]\n", "pes = [\"ropey\"]\n", "tasks = []\n",
                          "train_samples_per_s = -3\n"}) {
    try {
      load_plan(write(bad), PELAB_SOURCE_DIR);
      ADD_FAILURE() << "accepted: " << bad;
    } catch (const ConfigError& e) {
      const std::string key = std::string(bad).substr(0, std::string(bad).find(' '));
      EXPECT_NE(std::string(e.what()).find(key), std::string::npos) << e.what();
    }
  }
}
