// `pelab reproduce --scale tiny` end to end (the CI smoke of the whole study), and its plans.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "cli_runner.h"
#include "config/config.h"
#include "reproduce/plan.h"
#include "reproduce/reproduce.h"
#include "sweep/sweep_spec.h"

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

namespace {

// Run names per sweep of a plan in one setup, e.g. {"small-standard-main": {"rope-count-s0", ..}}.
std::map<std::string, std::set<std::string>> run_names(const ReproducePlan& plan) {
  ReproduceOptions options;
  options.out_dir = "unused";
  std::map<std::string, std::set<std::string>> names;
  for (const auto& spec : reproduce_sweeps(plan, "standard", options))
    for (const auto& r : expand_sweep(spec, 1)) names[spec.name].insert(r.name);
  return names;
}

std::string refusal(const std::string& file) {
  try {
    load_plan(file, PELAB_SOURCE_DIR);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "accepted";
}

}  // namespace

// small trains Task 2 on seed 0 only ([task_seeds] count = [0]); small-full extends it and puts
// k-heads and Task 2's seed 1 back, with every other key (the [set] overrides) small's.
TEST(Reproduce, TaskSeedsLeaveOutTask2sSecondSeedAndExtendsPutsItBack) {
  const auto small = load_plan(plan_file("small"), PELAB_SOURCE_DIR);
  const auto full = load_plan(plan_file("small-full"), PELAB_SOURCE_DIR);
  EXPECT_EQ(full.scale, "small-full");
  EXPECT_EQ(full.fixed_overrides, small.fixed_overrides);
  EXPECT_EQ(full.base_config, small.base_config);
  const auto cut = run_names(small), whole = run_names(full);
  size_t cut_runs = 0, whole_runs = 0;
  for (const auto& [sweep, names] : cut) {
    cut_runs += names.size();
    for (const auto& name : names) EXPECT_EQ(name.find("count-s1"), std::string::npos) << name;
    EXPECT_TRUE(std::any_of(names.begin(), names.end(),
                            [](const std::string& n) { return n.ends_with("count-s0"); }))
        << sweep << " trains no Task 2 run";
  }
  for (const auto& [sweep, names] : whole) whole_runs += names.size();
  EXPECT_EQ(cut_runs, 24u);    // per setup: 8 PEs x (2 seeds on Task 1 + 1 on Task 2)
  EXPECT_EQ(whole_runs, 38u);  // + 8 Task 2 seed-1 runs + 6 k-heads runs
  EXPECT_TRUE(whole.at("small-full-standard-main").count("rope-count-s1"));
  EXPECT_EQ(whole.at("small-full-standard-k_heads").size(), 6u);
}

TEST(Reproduce, BadTaskSeedsAndExtendsAreRefusedWithTheirKey) {
  const fs::path dir = fs::path(::testing::TempDir()) / "pelab_plan_extends";
  fs::create_directories(dir);
  auto write = [&](const std::string& name, const std::string& text) {
    std::ofstream(dir / name) << text;
    return (dir / name).string();
  };
  auto r = refusal(write("a.toml", "seeds = [0, 1]\n[task_seeds]\ncount = [2]\n"));
  EXPECT_NE(r.find("task_seeds.count: seed 2 is not in seeds [0, 1]"), std::string::npos) << r;
  r = refusal(write("a.toml", "tasks = [\"distance\"]\n[task_seeds]\ncount = [0]\n"));
  EXPECT_NE(r.find("task_seeds.count: not a task of this plan; accepted: distance"),
            std::string::npos)
      << r;
  r = refusal(write("a.toml", "task_seeds = [0]\n"));
  EXPECT_NE(r.find("'task_seeds' must be a table"), std::string::npos) << r;
  r = refusal(write("a.toml", "extends = \"nowhere.toml\"\n"));
  EXPECT_NE(r.find("extends 'nowhere.toml': no such plan"), std::string::npos) << r;
  r = refusal(write("a.toml", "extends = \"/dev/zero\"\n"));
  EXPECT_NE(r.find("no such plan"), std::string::npos) << r;  // only a regular file is read
  write("b.toml", "extends = \"c.toml\"\n");
  r = refusal(write("c.toml", "extends = \"b.toml\"\n"));
  EXPECT_NE(r.find("more than 8 plans deep"), std::string::npos) << r;
}
