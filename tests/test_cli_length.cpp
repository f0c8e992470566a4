// End-to-end: pelab eval --lengths on every PE (the refusal and the clamp included), the store
// record, and each probe task through train, eval --lengths, ablate, logits and removal.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "cli_runner.h"
#include "store/store.h"

namespace fs = std::filesystem;

using pelab::test_cli::json_of;
using pelab::test_cli::run;
using pelab::test_cli::train_tiny_run;

namespace {

fs::path length_run(const std::string& test, const std::string& overrides) {
  return train_tiny_run("pelab_length_" + test, overrides);
}

}  // namespace

TEST(CliLength, EveryPeThroughLengthsWithTheRefusalForTables) {
  for (const std::string pe :
       {"nope", "sinusoidal", "learned", "relative", "t5", "alibi", "rope", "rope_abs", "mla"}) {
    const auto dir = length_run("pe_" + pe, "model.pe=" + pe);
    const bool table = pe == "learned" || pe == "relative";
    const std::string lengths = " --lengths 32,48,64 --figure none --json";
    if (table) {
      const auto refused = run("eval " + dir.string() + lengths);
      EXPECT_NE(refused.status, 0) << pe;
      EXPECT_NE(refused.output.find("model.pe = " + pe), std::string::npos) << refused.output;
      EXPECT_NE(refused.output.find("longest length it supports is 32"), std::string::npos)
          << refused.output;
    }
    const auto j = json_of("eval " + dir.string() + lengths + (table ? " --clamp-positions" : ""));
    ASSERT_EQ(j["points"].size(), 3u) << pe;
    EXPECT_EQ(j["points"][2]["length"], 64);
    EXPECT_DOUBLE_EQ(j["points"][2]["factor"].get<double>(), 2.0);
    EXPECT_EQ(j["clamped"].get<bool>(), table);
    // At the training length --lengths is the plain evaluation of the test split.
    const auto plain = json_of("eval " + dir.string() + " --json");
    EXPECT_DOUBLE_EQ(j["points"][0]["accuracy"].get<double>(), plain["accuracy"].get<double>());
  }
}

TEST(CliLength, BadInputAndOverridesAndStore) {
  const auto dir = length_run("bad", "model.pe=rope");
  const auto shorter = run("eval " + dir.string() + " --lengths 16");
  EXPECT_NE(shorter.status, 0);
  EXPECT_NE(shorter.output.find("shorter than the training length"), std::string::npos);
  const auto garbage = run("eval " + dir.string() + " --lengths 40,x");
  EXPECT_NE(garbage.status, 0);
  EXPECT_NE(garbage.output.find("--lengths: bad entry 'x'"), std::string::npos);
  const auto bad_key = run("eval " + dir.string() + " --lengths 40 model.nosuch=1");
  EXPECT_NE(bad_key.status, 0);
  EXPECT_NE(bad_key.output.find("model.nosuch"), std::string::npos);
  // Only evaluation-time keys (RoPE scaling) may change a trained run, with or without --lengths.
  for (const char* lengths : {"", " --lengths 48"}) {
    const auto trained_key = run("eval " + dir.string() + lengths + " model.rope_base=100");
    EXPECT_NE(trained_key.status, 0) << lengths;
    EXPECT_NE(trained_key.output.find("cannot be overridden at evaluation"), std::string::npos)
        << trained_key.output;
  }
  // An override reaches the evaluated model: RoPE position interpolation changes the loss.
  const auto base = json_of("eval " + dir.string() + " --lengths 48 --figure none --json");
  const auto other = json_of("eval " + dir.string() +
                             " --lengths 48 --figure none --json model.rope_scaling=linear "
                             "model.rope_scaling_factor=2");
  EXPECT_NE(base["points"][0]["loss"].get<double>(), other["points"][0]["loss"].get<double>());
  // Two runs, one figure with a line each.
  const auto second = length_run("bad2", "model.pe=alibi");
  const auto both = json_of("eval " + dir.string() + " " + second.string() +
                            " --lengths 32,40 --json --figure " + (dir / "both.svg").string());
  ASSERT_EQ(both.size(), 2u);
  EXPECT_TRUE(fs::exists(dir / "both.svg"));
}

TEST(CliLength, StoresTheResultAsLengthGeneralization) {
  const auto dir = length_run("store", "model.pe=t5");
  const fs::path db = fs::path(::testing::TempDir()) / "pelab_length_store.db";
  fs::remove(db);
  int64_t id = 0;
  {
    pelab::Store store(db);
    pelab::RunRecord record;
    record.name = "t5-run";
    record.run_dir = dir.string();
    record.pe = "t5";
    record.task = "distance";
    id = store.upsert_run(record);
  }
  const auto missing = run("eval " + dir.string() + " --lengths 40 --figure none --store " +
                           (dir / "absent.db").string());
  EXPECT_NE(missing.status, 0);
  const auto r =
      run("eval " + dir.string() + " --lengths 32,64 --figure none --store " + db.string());
  ASSERT_EQ(r.status, 0) << r.output;
  pelab::Store store(db, pelab::Store::Mode::kExisting);
  const auto results = store.results("length_generalization", id);
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].key, "test");
  EXPECT_EQ(results[0].payload["points"].size(), 2u);
  EXPECT_EQ(results[0].payload["pe"], "t5");
}

class CliProbe : public ::testing::TestWithParam<std::string> {};

// Each probe runs through the whole toolchain unchanged (rope_abs: removal needs an absolute PE).
TEST_P(CliProbe, TrainEvalLengthsAblateLogitsRemoval) {
  const auto dir = length_run("probe_" + GetParam(), "model.pe=rope_abs task.name=" + GetParam());
  const auto lengths = json_of("eval " + dir.string() + " --lengths 32,64 --json");
  EXPECT_EQ(lengths["task"], GetParam());
  EXPECT_TRUE(fs::exists(dir / "length.svg"));
  const auto ablate = json_of("ablate " + dir.string() + " --json --figure none");
  EXPECT_EQ(ablate["accuracy"].size(), 2u);
  const auto logits =
      json_of("logits " + dir.string() + " --layer 0 --head 1 --sample 2 --json --figure none");
  EXPECT_EQ(logits["terms"].size(), 4u);
  const auto removal = json_of("removal " + dir.string() + " --draws 2 --json --figure none");
  EXPECT_EQ(removal["layers"].size(), 2u);
}

INSTANTIATE_TEST_SUITE_P(Probes, CliProbe, ::testing::Values("recall", "first", "order", "offset"));
