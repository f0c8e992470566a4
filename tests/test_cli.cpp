// End-to-end: the pelab binary as a user runs it.
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "cli_runner.h"
#include "kernels/fused_attention.h"
#include "kernels/onednn_linear.h"
#include "test_files.h"
#include "train/safetensors.h"

namespace fs = std::filesystem;

using pelab::test_cli::run;
using pelab::test_files::tiny_config_file;

namespace {}  // namespace

TEST(Cli, TrainEvalExportResume) {
  const fs::path dir = fs::path(::testing::TempDir()) / "pelab_cli_run";
  fs::remove_all(dir);
  auto r = run("train --config " + tiny_config_file() +
               " model.pe=alibi task.name=count train.epochs=1 train.threads=1 " +
               "--no-progress --out " + dir.string());
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("test_acc"), std::string::npos) << r.output;
  r = run("eval " + dir.string() + " --split test --json");
  ASSERT_EQ(r.status, 0) << r.output;
  auto j = nlohmann::json::parse(r.output);
  EXPECT_GE(j["accuracy"].get<double>(), 0.0);
  EXPECT_LE(j["accuracy"].get<double>(), 1.0);
  EXPECT_EQ(j["samples"].get<int64_t>(), 154);  // 30% of 512
  r = run("eval " + dir.string() + " --split all --json");
  EXPECT_EQ(nlohmann::json::parse(r.output)["samples"].get<int64_t>(), 512);
  r = run("train --resume " + dir.string() + " train.epochs=2 --no-progress");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("epoch   2/2"), std::string::npos) << r.output;
  const fs::path out = dir / "weights.safetensors";
  r = run("export " + dir.string() + " --out " + out.string());
  ASSERT_EQ(r.status, 0) << r.output;
  auto file = pelab::read_safetensors(out);
  bool found = false;
  for (const auto& [name, tensor] : file.tensors)
    if (name == "blocks.0.attention.query.weight") found = tensor.size(0) == 32;
  EXPECT_TRUE(found);
  EXPECT_EQ(file.metadata.at("pe"), "alibi");
}

TEST(Cli, BadInputGetsAClearMessageAndNonZeroExit) {
  const fs::path dir = fs::path(::testing::TempDir()) / "pelab_cli_bad";
  fs::remove_all(dir);
  auto r = run("train --config " + tiny_config_file() + " model.d_modle=8 --out " + dir.string());
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("model.d_modle"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("model.d_model"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(dir));  // nothing half-made
  r = run("train --config " + tiny_config_file() + " task.distance_between_max=40 --out " +
          dir.string());
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("task.distance_between_max"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("task.seq_len"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(dir));  // a task that cannot be generated leaves no folder either
  r = run("train --config " + tiny_config_file() + " model.pe=rope2 --out " + dir.string());
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("'rope2'"), std::string::npos) << r.output;
  r = run("eval /nonexistent_run_dir --json");
  EXPECT_NE(r.status, 0);
  r = run("eval " + std::string(PELAB_SOURCE_DIR) + "/configs --json");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("no checkpoint"), std::string::npos) << r.output;
  r = run("frobnicate");
  EXPECT_NE(r.status, 0);
}

namespace {

// `pelab bench --json` timing evaluation alone, briefly, on the tiny config; its JSON result.
nlohmann::json bench_eval_json(int threads, double seconds) {
  const auto r = run("bench --config " + tiny_config_file() +
                     " train.threads=" + std::to_string(threads) + " --phases eval --seconds " +
                     std::to_string(seconds) + " --warmup 0 --min-steps 1 --json");
  EXPECT_EQ(r.status, 0) << r.output;
  const auto start = r.output.find('{');
  return start == std::string::npos ? nlohmann::json::object()
                                    : nlohmann::json::parse(r.output.substr(start));
}

}  // namespace

// --phases times the phases named and no other; a phase it does not know is refused by name.
TEST(Cli, BenchPhasesTimeOnlyThePhasesNamed) {
  auto j = bench_eval_json(1, 0.2);
  EXPECT_EQ(j["train_samples_per_s"].get<double>(), 0.0);
  EXPECT_GT(j["eval_samples_per_s"].get<double>(), 0.0);
  EXPECT_EQ(j["matmul_gflop_per_s"].get<double>(), 0.0);
  const auto r = run("bench --config " + tiny_config_file() + " --phases trian");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("trian"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("train,eval,matmul"), std::string::npos) << r.output;
}

// The pelab binary's own loops reach the threads asked for (the library was once built without
// OpenMP, and at::parallel_for then ran everything on one thread); the bench reports both.
TEST(Cli, BenchReportsThatPelabsLoopsReachEveryThread) {
  auto j = bench_eval_json(2, 0.1);
  EXPECT_EQ(j["threads"].get<int64_t>(), 2);
  EXPECT_EQ(j["parallel_threads"].get<int64_t>(), 2);
}

// train.precision = "bf16" runs the attention kernels with bf16 products where the CPU has them;
// PELAB_FLOAT32_ATTENTION=1 keeps them float32 (bench/optimisations.sh's A/B switch).
TEST(Cli, BenchNamesTheBf16AttentionKernelsAndTheSwitchesThatChangeThem) {
  if (!cpu_has_avx512_bf16() || !onednn_available() || fused_attention_isa() != "avx512")
    GTEST_SKIP() << "no AVX512_BF16, no oneDNN or kernels other than avx512";
  // The variable set for one run: PELAB_FLOAT32_ATTENTION=1 or PELAB_BF16_ATTENTION_TILES=0.
  auto attention = [](const char* variable, const char* value) {
    if (variable) setenv(variable, value, 1);
    const auto r = run("bench --config " + tiny_config_file() +
                       " train.precision=bf16 --phases eval --seconds 0.1 --warmup 0 --min-steps 1"
                       " --json");
    if (variable) unsetenv(variable);
    EXPECT_EQ(r.status, 0) << r.output;
    const auto start = r.output.find('{');
    return start == std::string::npos
               ? std::string()
               : nlohmann::json::parse(r.output.substr(start))["attention"].get<std::string>();
  };
  // AMX tiles where the CPU has them, VDPBF16PS where it has not or they are switched off.
  EXPECT_EQ(attention(nullptr, nullptr),
            amx_attention_tiles_available() ? "fused (amx)" : "fused (avx512bf16)");
  EXPECT_EQ(attention("PELAB_BF16_ATTENTION_TILES", "0"), "fused (avx512bf16)");
  EXPECT_EQ(attention("PELAB_FLOAT32_ATTENTION", "1"), "fused (avx512)");
}

TEST(Cli, PeListShowsEveryEncoding) {
  auto r = run("pe list");
  ASSERT_EQ(r.status, 0);
  for (const char* name :
       {"nope", "sinusoidal", "learned", "relative", "t5", "alibi", "rope", "rope_abs", "mla"})
    EXPECT_NE(r.output.find(name), std::string::npos) << name;
}
