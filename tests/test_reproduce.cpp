// `pelab reproduce --scale tiny` end to end (the CI smoke of the whole study), and its plans.
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "cli_runner.h"
#include "config/config.h"
#include "reproduce/plan.h"
#include "reproduce/reproduce.h"

namespace fs = std::filesystem;
using namespace pelab;

using pelab::test_cli::run;

namespace {

std::string plan_file(const std::string& scale) {
  return std::string(PELAB_SOURCE_DIR) + "/configs/reproduce/" + scale + ".toml";
}

}  // namespace

TEST(Reproduce, TinyScaleRunsEndToEndAndResumes) {
  const fs::path dir = fs::path(::testing::TempDir()) / "pelab_reproduce_tiny";
  fs::remove_all(dir);
  const std::string args = "reproduce --scale " + plan_file("tiny") + " --no-progress --out " +
                           (dir / "runs").string() + " --store " + (dir / "pelab.db").string() +
                           " --report " + (dir / "report").string();
  auto r = run(args);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("(0 failed)"), std::string::npos) << r.output;
  ASSERT_TRUE(fs::exists(dir / "report" / "index.html"));
  std::ifstream claims_file(dir / "report" / "claims.json");
  const auto claims = nlohmann::json::parse(claims_file);
  ASSERT_TRUE(claims.is_array());
  EXPECT_GE(claims.size(), 20u);  // every claim, for both setups
  for (const auto& c : claims) {
    EXPECT_TRUE(c.contains("claim") && c.contains("verdict") && c.contains("evidence"));
    const std::string v = c["verdict"];
    EXPECT_TRUE(v == "holds" || v == "does not hold" || v == "mixed" || v == "not measured") << v;
  }
  // A re-run trains nothing and analyses nothing: every run and result is in the store.
  r = run(args);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find(" 0 analyses"), std::string::npos) << r.output;
}

TEST(Reproduce, PlansOfEveryScaleLoadAndExpand) {
  for (const std::string scale : {"tiny", "small", "medium", "paper"}) {
    const auto plan = load_plan(plan_file(scale), PELAB_SOURCE_DIR);
    EXPECT_EQ(plan.scale, scale);
    ReproduceOptions options;
    options.out_dir = "unused";
    for (const auto& setup : setup_names()) {
      const auto sweeps = reproduce_sweeps(plan, setup, options);
      ASSERT_GE(sweeps.size(), 3u);
      EXPECT_EQ(sweeps[0].name, scale + "-" + setup + "-main");
      for (const auto& s : sweeps) EXPECT_EQ(s.setup, setup);
    }
  }
}

// The zoo plan runs only the zoo sweep: the zoo PEs beside rope, both tasks, the plan's seeds.
TEST(Reproduce, ZooPlanRunsOnlyTheZooSweep) {
  const auto plan = load_plan(plan_file("zoo"), PELAB_SOURCE_DIR);
  EXPECT_EQ(plan.scale, "zoo");
  ReproduceOptions options;
  options.out_dir = "out";
  const auto sweeps = reproduce_sweeps(plan, "standard", options);
  ASSERT_EQ(sweeps.size(), 1u);
  EXPECT_EQ(sweeps[0].name, "zoo-standard-zoo");
  EXPECT_EQ(sweeps[0].out_dir, fs::path("out") / "standard" / "zoo");
  ASSERT_EQ(sweeps[0].grid.size(), 3u);
  EXPECT_EQ(sweeps[0].grid[0].first, "model.pe");
  EXPECT_EQ(sweeps[0].grid[0].second,
            (std::vector<std::string>{"rope", "xpos", "prope", "kerple", "fire", "cope"}));
  EXPECT_EQ(sweeps[0].grid[2].second, (std::vector<std::string>{"0", "1"}));
  // The setup's overrides come along.
  const auto& fixed = sweeps[0].fixed_overrides;
  EXPECT_NE(std::find(fixed.begin(), fixed.end(), "model.mask=padding"), fixed.end());
  const fs::path dir = fs::path(::testing::TempDir()) / "pelab_zoo_plan";
  fs::create_directories(dir);
  std::ofstream(dir / "plan.toml") << "experiments = [\"main\", \"zooo\"]\n";
  try {
    load_plan((dir / "plan.toml").string(), PELAB_SOURCE_DIR);
    FAIL() << "unknown experiment accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("zooo"), std::string::npos) << e.what();
  }
}

TEST(Reproduce, SetupsDifferInTheAuthorsQuirks) {
  Config faithful, standard;
  for (const auto& o : setup_overrides("faithful")) apply_override(faithful, o);
  for (const auto& o : setup_overrides("standard")) apply_override(standard, o);
  EXPECT_EQ(faithful.model.mask, "none");
  EXPECT_EQ(faithful.model.kv_source, "embedding");
  EXPECT_EQ(faithful.model.alibi_slopes, "paper");
  EXPECT_EQ(faithful.model.pooling, "all");
  EXPECT_TRUE(faithful.task.fillers_may_be_triggers);
  EXPECT_EQ(standard.model.mask, "padding");
  EXPECT_EQ(standard.model.kv_source, "residual");
  EXPECT_EQ(standard.model.alibi_slopes, "standard");
  EXPECT_EQ(standard.model.pooling, "valid");
  EXPECT_FALSE(standard.task.fillers_may_be_triggers);
  EXPECT_EQ(setup_ablation_split("faithful"), "all");
  EXPECT_EQ(setup_ablation_split("standard"), "test");
  EXPECT_THROW(setup_overrides("sloppy"), ConfigError);
}

TEST(Reproduce, BadPlansAreRefusedWithTheirKey) {
  EXPECT_THROW(load_plan("huge", PELAB_SOURCE_DIR), ConfigError);
  const fs::path dir = fs::path(::testing::TempDir()) / "pelab_bad_plan";
  fs::create_directories(dir);
  auto write = [&](const std::string& text) {
    std::ofstream(dir / "plan.toml") << text;
    return (dir / "plan.toml").string();
  };
  try {
    load_plan(write("seeds = [0]\nsedes = [1]\n"), PELAB_SOURCE_DIR);
    FAIL() << "unknown key accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("sedes"), std::string::npos) << e.what();
  }
  EXPECT_THROW(load_plan(write("seeds = []\n"), PELAB_SOURCE_DIR), ConfigError);
  EXPECT_THROW(load_plan(write("workers = 0\n"), PELAB_SOURCE_DIR), ConfigError);
  EXPECT_THROW(load_plan(write("[set]\n\"model.pe\" = \"ropey\"\n"), PELAB_SOURCE_DIR),
               ConfigError);
  EXPECT_THROW(load_plan(write("base = \"missing.toml\"\n"), PELAB_SOURCE_DIR), ConfigError);
}
