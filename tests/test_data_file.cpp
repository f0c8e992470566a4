// Data files (src/train/data_file.*) and the commands around them: pelab data, pelab predict.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "cli_runner.h"
#include "test_files.h"
#include "train/data_file.h"
#include "train/safetensors.h"
#include "train/trainer.h"

namespace fs = std::filesystem;
using pelab::test_cli::run;

namespace pelab {
using pelab::test_files::fresh_test_dir;

namespace {

DatasetSplit small_split() {
  TaskConfig task;
  task.vocab_size = 16;
  task.samples = 10;
  task.seq_len = 12;
  task.distance_left_max = 2;
  task.distance_between_max = 4;
  task.distance_right_max = 2;
  return make_split(task);
}

void write_text(const fs::path& file, const std::string& text) { std::ofstream(file) << text; }

// The message of the DataFileError that `f` throws ("" when it throws none).
template <typename F>
std::string error_of(F f) {
  try {
    f();
  } catch (const DataFileError& e) {
    return e.what();
  }
  return "";
}

TEST(DataFile, RoundTripsBothFormatsWithTheSplitMarked) {
  const auto dir = fresh_test_dir("data_file_round_trip");
  const DatasetSplit split = small_split();
  const DataFile all = data_of_split(split, "all");
  ASSERT_EQ(all.data.size(), 10);
  EXPECT_EQ(all.split.sum().item<int64_t>(), split.test.size());
  for (const char* name : {"rows.safetensors", "rows.jsonl"}) {
    write_data_file(dir / name, all, {{"format", "pelab-data"}});
    EXPECT_FALSE(fs::exists(dir / (std::string(name) + ".tmp")));
    const DataFile back = read_data_file(dir / name);
    EXPECT_TRUE(back.data.tokens.equal(all.data.tokens)) << name;
    EXPECT_TRUE(back.data.lengths.equal(all.data.lengths)) << name;
    EXPECT_TRUE(back.data.labels.equal(all.data.labels)) << name;
    EXPECT_TRUE(back.split.equal(all.split)) << name;
  }
  const DataFile test = data_of_split(split, "test");
  EXPECT_FALSE(test.split.defined());
  EXPECT_TRUE(test.data.tokens.equal(all.data.tokens.slice(0, split.train.size())));
}

TEST(DataFile, JsonLinesWithoutLengthOrLabelAndInt32Safetensors) {
  const auto dir = fresh_test_dir("data_file_minimal");
  write_text(dir / "a.jsonl", "{\"tokens\": [3, 1, 0]}\n\n{\"tokens\": [4, 2, 5]}\n");
  const DataFile a = read_data_file(dir / "a.jsonl");
  EXPECT_TRUE(a.data.lengths.equal(torch::tensor({3, 3}, torch::kInt64)));
  EXPECT_FALSE(a.data.labels.defined());
  write_safetensors(dir / "b.safetensors",
                    {{"tokens", torch::tensor({{1, 2}, {3, 0}}, torch::kInt32)},
                     {"lengths", torch::tensor({2, 1}, torch::kInt32)}},
                    {});
  const DataFile b = read_data_file(dir / "b.safetensors");
  EXPECT_EQ(b.data.tokens.scalar_type(), torch::kInt64);
  EXPECT_EQ(b.data.lengths[1].item<int64_t>(), 1);
}

TEST(DataFile, RefusesBadFilesNamingTheProblem) {
  const auto dir = fresh_test_dir("data_file_bad");
  EXPECT_NE(error_of([&] { data_format_for("x.csv"); }).find("accepted: .safetensors, .jsonl"),
            std::string::npos);
  write_text(dir / "ragged.jsonl", "{\"tokens\": [1, 2]}\n{\"tokens\": [1, 2, 3]}\n");
  EXPECT_NE(error_of([&] {
              read_data_file(dir / "ragged.jsonl");
            }).find("line 2 (row 1) has 3 tokens but line 1 has 2"),
            std::string::npos);
  write_text(dir / "labels.jsonl", "{\"tokens\": [1], \"label\": 0}\n{\"tokens\": [2]}\n");
  EXPECT_NE(error_of([&] {
              read_data_file(dir / "labels.jsonl");
            }).find("line 2: \"label\" must be given on every line or on none"),
            std::string::npos);
  write_text(dir / "typo.jsonl", "{\"tokens\": [1], \"lenght\": 1}\n");
  EXPECT_NE(error_of([&] { read_data_file(dir / "typo.jsonl"); }).find("unknown key \"lenght\""),
            std::string::npos);
  write_text(dir / "text.jsonl", "{\"tokens\": [1, \"a\"]}\n");
  EXPECT_NE(error_of([&] { read_data_file(dir / "text.jsonl"); }).find("accepted: an integer"),
            std::string::npos);
  write_safetensors(dir / "extra.safetensors",
                    {{"tokens", torch::zeros({2, 3}, torch::kInt64)},
                     {"weights", torch::zeros({2}, torch::kFloat)}},
                    {});
  EXPECT_NE(error_of([&] {
              read_data_file(dir / "extra.safetensors");
            }).find("unexpected tensor 'weights'"),
            std::string::npos);
  write_safetensors(dir / "float.safetensors", {{"tokens", torch::zeros({2, 3})}}, {});
  EXPECT_NE(
      error_of([&] { read_data_file(dir / "float.safetensors"); }).find("accepted: I64 or I32"),
      std::string::npos);
  write_safetensors(dir / "shape.safetensors",
                    {{"tokens", torch::zeros({2, 3}, torch::kInt64)},
                     {"lengths", torch::zeros({3}, torch::kInt64)}},
                    {});
  EXPECT_NE(error_of([&] { read_data_file(dir / "shape.safetensors"); }).find("accepted: [2]"),
            std::string::npos);
  EXPECT_NE(error_of([&] { read_data_file(dir / "missing.jsonl"); }).find("no such file"),
            std::string::npos);
}

TEST(DataFile, ChecksRowsAgainstTheModel) {
  DataFile rows;
  rows.data = Dataset{torch::tensor({{1, 2, 0}, {3, 9, 0}}, torch::kInt64),
                      torch::tensor({2, 2}, torch::kInt64), torch::tensor({0, 1}, torch::kInt64)};
  EXPECT_EQ(error_of([&] { check_rows_for_model(rows, "f", 10, 3, 2); }), "");
  EXPECT_NE(error_of([&] {
              check_rows_for_model(rows, "f", 9, 3, 2);
            }).find("row 1, position 1: token id 9 is outside the vocabulary; accepted: 0..8"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              check_rows_for_model(rows, "f", 10, 2, 2);
            }).find("rows have 3 tokens; accepted: 1..2"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              check_rows_for_model(rows, "f", 10, 3, 1);
            }).find("row 1: label 1; accepted: 0..0"),
            std::string::npos);
  rows.data.lengths[0] = 0;
  EXPECT_NE(error_of([&] {
              check_rows_for_model(rows, "f", 10, 3, 2);
            }).find("row 0: length 0; accepted: 1..3"),
            std::string::npos);
}

TEST(DataFile, RefusesAFolderThatDoesNotExistAndLeavesNothing) {
  const auto dir = fresh_test_dir("data_file_no_folder");
  const DataFile rows = data_of_split(small_split(), "test");
  EXPECT_NE(
      error_of([&] { write_data_file(dir / "nope" / "x.jsonl", rows, {}); }).find("does not exist"),
      std::string::npos);
  EXPECT_FALSE(fs::exists(dir / "nope"));
}

// End to end: the data of a run, predictions on it agree with pelab eval, and bad input.
TEST(CliData, DataThenPredictAgreesWithEval) {
  const auto dir = fresh_test_dir("data_file_cli");
  const fs::path run_dir = dir / "run";
  auto r = run("train --config " + std::string(PELAB_SOURCE_DIR) +
               "/configs/tiny.toml model.pe=alibi task.samples=60 train.epochs=1 train.threads=1 "
               "--no-progress --out " +
               run_dir.string());
  ASSERT_EQ(r.status, 0) << r.output;
  for (const char* name : {"test.safetensors", "test.jsonl"}) {
    const fs::path file = dir / name;
    r = run("data " + run_dir.string() + " --split test --out " + file.string());
    ASSERT_EQ(r.status, 0) << r.output;
    r = run("predict " + run_dir.string() + " --input " + file.string() + " --json", false);
    ASSERT_EQ(r.status, 0) << r.output;
    const auto predicted = nlohmann::json::parse(r.output);
    r = run("eval " + run_dir.string() + " --split test --json", false);
    const auto evaluated = nlohmann::json::parse(r.output);
    EXPECT_EQ(predicted["samples"], evaluated["samples"]);
    EXPECT_DOUBLE_EQ(predicted["accuracy"].get<double>(), evaluated["accuracy"].get<double>());
    EXPECT_EQ(predicted["logits"][0].size(), 16u);  // tiny: distance_between_max 14 + 2 classes
  }
  r = run("predict " + run_dir.string() + " --input " + (dir / "test.jsonl").string());
  EXPECT_EQ(r.status, 0);
  EXPECT_NE(r.output.find("accuracy"), std::string::npos) << r.output;
}

TEST(CliData, BadInputGetsAClearMessage) {
  const auto dir = fresh_test_dir("data_file_cli_bad");
  const std::string tiny = std::string(PELAB_SOURCE_DIR) + "/configs/tiny.toml";
  auto r = run("data --config " + tiny + " --split validation --out " + (dir / "x.jsonl").string());
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("validation"), std::string::npos) << r.output;
  r = run("data --config " + tiny + " --out " + (dir / "x.csv").string());
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("accepted: .safetensors, .jsonl"), std::string::npos) << r.output;
  r = run("data --config " + tiny + " --out " + (dir / "missing" / "x.jsonl").string());
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("does not exist"), std::string::npos) << r.output;
  r = run("data " + dir.string() + " --out " + (dir / "x.jsonl").string());
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("no config.toml"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(dir / "x.jsonl"));
  // A config's rows, then one token id beyond a model's vocabulary.
  const fs::path run_dir = dir / "run";
  r = run("train --config " + tiny +
          " model.pe=nope task.samples=40 train.epochs=1 "
          "train.threads=1 --no-progress --out " +
          run_dir.string());
  ASSERT_EQ(r.status, 0) << r.output;
  write_text(dir / "big.jsonl", "{\"tokens\": [1, 2, 0]}\n{\"tokens\": [1, 64, 0]}\n");
  r = run("predict " + run_dir.string() + " --input " + (dir / "big.jsonl").string());
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("row 1, position 1: token id 64 is outside the vocabulary; accepted: "
                          "0..63"),
            std::string::npos)
      << r.output;
}

}  // namespace
}  // namespace pelab
