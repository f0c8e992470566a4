// End-to-end: the analysis commands on tiny runs, their JSON, figures and bad input.
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "cli_runner.h"

namespace fs = std::filesystem;

using pelab::test_cli::json_of;
using pelab::test_cli::run;
using pelab::test_cli::train_tiny_run;

namespace {

fs::path tiny_run(const std::string& pe, const std::string& test) {
  return train_tiny_run("pelab_analysis_" + test + "_" + pe, "model.pe=" + pe);
}

}  // namespace

TEST(CliAnalysis, LogitsWritesJsonAndFigure) {
  const auto dir = tiny_run("rope_abs", "logits");
  const auto j = json_of("logits " + dir.string() + " --layer 1 --head 2 --sample 3 --json");
  EXPECT_EQ(j["terms"].size(), 4u);
  EXPECT_LT(j["reconstruction_relative_error"].get<double>(), 1e-5);
  EXPECT_TRUE(j["rotary"].is_object());
  EXPECT_TRUE(fs::exists(dir / "logits-l1-h2-s3.svg"));
}

TEST(CliAnalysis, RemovalAndSpectrumOnARun) {
  const auto dir = tiny_run("rope_abs", "removal");
  const auto removal = json_of("removal " + dir.string() + " --draws 2 --json");
  EXPECT_EQ(removal["layers"].size(), 2u);
  EXPECT_EQ(removal["layers"][0]["accuracy_without_random"].size(), 2u);
  EXPECT_TRUE(fs::exists(dir / "removal-test.svg"));
  const auto spectrum = json_of("spectrum --run " + dir.string() + " --n 16 --json");
  EXPECT_EQ(spectrum["summary"]["bounds_hold"], spectrum["summary"]["checks"]);
  EXPECT_FALSE(spectrum["logit_spectra"].empty());
  EXPECT_TRUE(fs::exists(dir / "spectrum-n16-kernels.svg"));
}

TEST(CliAnalysis, SpectrumOfAPeWithoutARun) {
  const fs::path stem = fs::path(::testing::TempDir()) / "pelab_spectrum_alibi";
  const auto j = json_of(
      "spectrum --pe alibi --n 24 --draws 2 model.n_heads=4 model.n_layers=1 "
      "--figure " +
      stem.string() + " --json");
  EXPECT_EQ(j["kernels"].size(), 4u);
  EXPECT_EQ(j["coupling_checks"].size(), 8u);  // 2 draws x 4 heads
  EXPECT_EQ(j["coupling_checks"][0]["kind"], "weyl");
  EXPECT_TRUE(fs::exists(stem.string() + "-kernels.svg"));
  EXPECT_TRUE(fs::exists(stem.string() + "-coupling.svg"));
}

TEST(CliAnalysis, BadInputIsRefusedWithAClearMessage) {
  const auto rope = tiny_run("rope", "bad_input").string();
  auto r = run("logits " + rope + " --layer 7 --head 0 --figure none");
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("--layer 7 is out of range"), std::string::npos) << r.output;
  r = run("logits " + rope + " --layer 0 --head 0 --sample 100000 --figure none");
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("--sample"), std::string::npos) << r.output;
  r = run("removal " + rope + " --figure none");
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("needs an absolute PE"), std::string::npos) << r.output;
  r = run("spectrum --figure none");
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("--pe"), std::string::npos) << r.output;
  r = run("spectrum --pe rotary --figure none");
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("rope"), std::string::npos) << r.output;  // suggests the nearest name
  r = run("spectrum --run " + rope + " --n 9999 --figure none");
  EXPECT_NE(r.status, 0) << r.output;
}
