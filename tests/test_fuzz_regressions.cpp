// Inputs the loaders must refuse with a clear error: the crashes, hangs and sanitizer reports the
// fuzz targets (tests/fuzz, docs/RELIABILITY.md) found, and inputs claiming sizes too large to be
// real, which must be refused before anything of that size is allocated.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <string>

#include "config/config.h"
#include "reproduce/plan.h"
#include "sweep/sweep_spec.h"
#include "train/checkpoint.h"
#include "train/checkpoint_records.h"
#include "train/safetensors.h"

namespace pelab {
namespace {

namespace fs = std::filesystem;

class FuzzRegression : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("pelab_fuzzreg_" + std::to_string(std::random_device{}()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  fs::path write(const std::string& name, const std::string& bytes) const {
    const fs::path file = dir_ / name;
    fs::create_directories(file.parent_path());
    std::ofstream out(file, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    return file;
  }
  // The message of the exception `action` throws, "" if it throws none; other exception types
  // than E fail the test.
  template <typename E>
  static std::string error_of(const std::function<void()>& action) {
    try {
      action();
    } catch (const E& e) {
      return e.what();
    }
    return "";
  }
  // The refusal load_checkpoint gives for a kept fuzzer input (tests/fuzz/regressions/NAME); every
  // such refusal says the file is corrupt or not a pelab checkpoint.
  static std::string checkpoint_refusal(const std::string& name) {
    const fs::path file = fs::path(PELAB_SOURCE_DIR) / "tests/fuzz/regressions" / name;
    EXPECT_TRUE(fs::exists(file)) << file;
    const std::string e = error_of<CheckpointError>([&] { load_checkpoint(file); });
    EXPECT_NE(e.find("is corrupt or not a pelab checkpoint"), std::string::npos) << e;
    EXPECT_NE(e.find(file.string()), std::string::npos) << e;
    return e;
  }
  // A safetensors file: the 8-byte little-endian header length, the header, the data.
  static std::string safetensors_bytes(const std::string& header, const std::string& data = "",
                                       uint64_t claimed_header_length = 0) {
    const uint64_t n = claimed_header_length ? claimed_header_length : header.size();
    std::string out(8, '\0');
    for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
    return out + header + data;
  }

  fs::path dir_;
};

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

TEST_F(FuzzRegression, SafetensorsHeaderClaimingATerabyteIsRefused) {
  const fs::path file =
      write("big-header.safetensors", safetensors_bytes("{}", "", 1'000'000'000'000));
  const std::string e = error_of<std::runtime_error>([&] { read_safetensors(file); });
  EXPECT_TRUE(contains(e, "header length 1000000000000 runs beyond the end of the file")) << e;
  EXPECT_TRUE(contains(e, file.string())) << e;
}

TEST_F(FuzzRegression, SafetensorsTensorClaimingATerabyteIsRefused) {
  // 2.5e11 F32 values = 1e12 bytes, in a file of a few dozen bytes.
  const fs::path file =
      write("big-tensor.safetensors",
            safetensors_bytes(
                R"({"w":{"dtype":"F32","shape":[250000000000],"data_offsets":[0,1000000000000]}})",
                "1234"));
  const std::string e = error_of<std::runtime_error>([&] { read_safetensors(file); });
  EXPECT_TRUE(contains(e, "out of range: the data section has 4 bytes")) << e;
}

TEST_F(FuzzRegression, SafetensorsShapeWhoseProductOverflowsIsRefused) {
  // 2^32 x 2^32 elements: the product overflows int64 (and the byte count overflows uint64).
  const fs::path file =
      write("overflow.safetensors",
            safetensors_bytes(
                R"({"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,0]}})"));
  const std::string e = error_of<std::runtime_error>([&] { read_safetensors(file); });
  EXPECT_TRUE(contains(e, "tensor 'w': shape [4294967296,4294967296] is too large")) << e;
  // A dimension beyond int64 on its own.
  const fs::path huge_dim =
      write("huge-dim.safetensors",
            safetensors_bytes(
                R"({"w":{"dtype":"U8","shape":[18446744073709551615],"data_offsets":[0,0]}})"));
  const std::string e2 = error_of<std::runtime_error>([&] { read_safetensors(huge_dim); });
  EXPECT_TRUE(contains(e2, "is too large")) << e2;
}

TEST_F(FuzzRegression, SafetensorsEmptyTensorWithOverflowingDimsIsRefused) {
  // Zero elements, but the strides (2^62 * 2^62) overflow int64; it used to be accepted.
  const fs::path file = write(
      "zero-huge.safetensors",
      safetensors_bytes(
          R"({"w":{"dtype":"F32","shape":[0,4611686018427387904,4611686018427387904],"data_offsets":[0,0]}})"));
  const std::string e = error_of<std::runtime_error>([&] { read_safetensors(file); });
  EXPECT_TRUE(contains(e, "is too large")) << e;
  // Empty tensors whose dims multiply within int64 stay readable.
  const fs::path fine =
      write("zero-fine.safetensors",
            safetensors_bytes(
                R"({"w":{"dtype":"F32","shape":[0,1000000,1000000],"data_offsets":[0,0]}})"));
  const SafetensorsFile read = read_safetensors(fine);
  ASSERT_EQ(read.tensors.size(), 1u);
  EXPECT_EQ(read.tensors[0].second.sizes(), (std::vector<int64_t>{0, 1000000, 1000000}));
}

TEST_F(FuzzRegression, SafetensorsShapeWithAbsurdlyManyDimsIsRefused) {
  std::string shape = "[1";
  for (int i = 1; i < 5000; ++i) shape += ",1";
  shape += "]";
  const fs::path file =
      write("many-dims.safetensors",
            safetensors_bytes(
                R"({"w":{"dtype":"U8","shape":)" + shape + R"(,"data_offsets":[0,1]}})", "x"));
  const std::string e = error_of<std::runtime_error>([&] { read_safetensors(file); });
  EXPECT_TRUE(contains(e, "shape has 5000 dimensions; accepted: at most 64")) << e;
}

TEST_F(FuzzRegression, CheckpointWhoseArchiveLibTorchCannotParseIsRefused) {
  // Found by fuzz_checkpoint: the tiny seed checkpoint with a few bytes changed. LibTorch threw a
  // torch::jit::ErrorReport (not a c10::Error), which escaped load_checkpoint uncaught.
  checkpoint_refusal("checkpoint-jit-error-report.pt");
}

TEST_F(FuzzRegression, CheckpointThatCrashedLibTorchIsRefusedBeforeLibTorchParsesIt) {
  // Found by fuzz_checkpoint: one type record's "__parameters__" became "__rapameters__", and
  // LibTorch 1.13's type parser recursed until the stack overflowed (a segfault, not an error).
  const std::string e = checkpoint_refusal("checkpoint-libtorch-segv.pt");
  EXPECT_TRUE(contains(e, "type record 'code/__torch__/___torch_mangle_10.py' line 2")) << e;
  EXPECT_TRUE(contains(e, "__rapameters__")) << e;
}

TEST_F(FuzzRegression, CheckpointWhosePickleClaimsTwentyFiveGigabytesIsRefused) {
  // Found by fuzz_checkpoint once the type-record check let it run at hundreds of inputs per
  // second: a mutated LONG_BINPUT in data.pkl made LibTorch's unpickler resize its memo table to
  // 1.6 billion entries (25 GB). pelab's pickle check refuses it before LibTorch reads it.
  const std::string e = checkpoint_refusal("checkpoint-libtorch-unpickler-25gb.pt");
  EXPECT_TRUE(contains(e, "pickle record 'data.pkl' byte 7580: memo index 1601071457 skips ahead"))
      << e;
}

TEST(CheckpointRecords, AcceptTheShapesLibTorchWritesAndRefuseEverythingElse) {
  const fs::path file = "run/checkpoint.pt";
  const std::string root =
      "class Module(Module):\n  __parameters__ = [\"rng_state\", ]\n  __buffers__ = []\n"
      "  format : str\n  rng_state : Tensor\n  model : __torch__.___torch_mangle_0.Module\n";
  const std::string leaf =
      "class Module(Module):\n  __parameters__ = []\n  __buffers__ = []\n"
      "  __annotations__ = []\n  __annotations__[\"params/0\"] = str\n"
      "  betas : Tuple[float, float]\n  maybe : Optional[List[Dict[str, int]]]\n";
  const std::string leaf_name = "code/__torch__/___torch_mangle_0.py";
  EXPECT_NO_THROW(check_type_records(file, {{"code/__torch__.py", root}, {leaf_name, leaf}}));

  auto refusal = [&](const std::map<std::string, std::string>& records) {
    try {
      check_type_records(file, records);
    } catch (const CheckpointError& e) {
      return std::string(e.what());
    }
    return std::string("(accepted)");
  };
  // A reference to a class the file does not hold, and a cycle of two classes.
  std::string e = refusal({{"code/__torch__.py", root}});
  EXPECT_TRUE(contains(e,
                       "refers to __torch__.___torch_mangle_0.Module, which the file does not "
                       "hold"))
      << e;
  const std::string back = leaf + "  parent : __torch__.Module\n";
  e = refusal({{"code/__torch__.py", root}, {leaf_name, back}});
  EXPECT_TRUE(contains(e, "refer to each other in a cycle")) << e;
  // Types nested beyond the limit, unknown types and members, and stray records.
  std::string deep = "Tensor";
  for (int i = 0; i < kMaxTypeDepth; ++i) deep = "List[" + deep + "]";
  e = refusal({{leaf_name, leaf + "  x : " + deep + "\n"}});
  EXPECT_TRUE(contains(e, "types nest deeper than 8 levels")) << e;
  e = refusal({{leaf_name, leaf + "  x : Any\n"}});
  EXPECT_TRUE(contains(e, "type 'Any' is not one pelab's checkpoints hold")) << e;
  e = refusal({{leaf_name, leaf + "  def forward(self):\n"}});
  EXPECT_TRUE(contains(e, "line 8")) << e;
  EXPECT_TRUE(contains(e, "expected NAME : TYPE")) << e;
  e = refusal({{leaf_name, "class Other(Module):\n"}});
  EXPECT_TRUE(contains(e, "the first line must be 'class Module(Module):'")) << e;
  e = refusal({{leaf_name, leaf + "  betas : Tuple[float, float\n"}});
  EXPECT_TRUE(contains(e, "expected ']' closing Tuple")) << e;
  e = refusal({{"code/__torch__/helper.py", leaf}});
  EXPECT_TRUE(contains(e, "unexpected code record 'code/__torch__/helper.py'")) << e;
  EXPECT_TRUE(contains(e, file.string())) << e;
}

TEST_F(FuzzRegression, CheckpointWhoseConfigDescribesAHugeModelIsRefusedBeforeBuildingIt) {
  // A valid archive whose configuration asks for ~1.4e14 parameters: building that model would
  // try to allocate hundreds of terabytes. The loader compares with the file size first.
  Config huge;
  huge.model.d_model = 65536;
  huge.model.n_layers = 1024;
  huge.model.d_ff = 1 << 20;
  torch::serialize::OutputArchive archive;
  archive.write("format", c10::IValue(std::string(kCheckpointFormat)));
  archive.write("config", c10::IValue(to_toml(huge)));
  archive.write("epochs_done", c10::IValue(int64_t{1}));
  archive.write("steps_done", c10::IValue(int64_t{1}));
  archive.write("metrics", c10::IValue(std::string("[]")));
  const fs::path file = dir_ / "huge.pt";
  archive.save_to(file.string());
  const std::string e = error_of<CheckpointError>([&] { load_checkpoint(file); });
  EXPECT_TRUE(contains(e,
                       "does not match its configuration: the configured model has at least "
                       "140737558609920 parameters"))
      << e;
  EXPECT_TRUE(contains(e, std::to_string(fs::file_size(file)) + " bytes")) << e;
}

TEST_F(FuzzRegression, SweepGridOfTenBillionRunsIsRefusedUnexpanded) {
  // 10 keys x 10 values: expanding it (a config load per run) would never finish.
  std::string grid = "[grid]\n";
  for (const char* key :
       {"train.seed", "task.seed", "task.split_seed", "train.epochs", "train.batch_size",
        "train.threads", "train.track_samples", "train.hessian_iterations", "model.t5_num_buckets",
        "model.t5_max_distance"}) {
    grid += fmt::format("\"{}\" = [2, 3, 4, 5, 6, 7, 8, 9, 10, 11]\n", key);
  }
  const fs::path file = write("sweeps/huge.toml", "name = \"huge\"\n" + grid);
  const std::string e = error_of<ConfigError>(
      [&] { expand_sweep(parse_sweep_file(file), /*threads_per_worker=*/1); });
  EXPECT_TRUE(contains(e, "the grid gives more than 10000 runs")) << e;
  EXPECT_TRUE(contains(e, "accepted: a grid of at most 10000 runs")) << e;
}

TEST_F(FuzzRegression, PlanIntegersGivenAsHugeFloatsAreRefused) {
  // Found by fuzz_plan's 10^6-execution run: `workers = 4e23`. toml++ converts a float to the
  // integer asked for, and a float beyond int64's range is undefined behaviour (UBSan). Integer
  // keys of a plan now accept TOML integers only.
  std::string e = error_of<ConfigError>(
      [&] { load_plan(write("p.toml", "workers = 4e23\n").string(), PELAB_SOURCE_DIR); });
  EXPECT_TRUE(contains(e, "'workers' must be an integer in [1, 64]")) << e;
  e = error_of<ConfigError>(
      [&] { load_plan(write("q.toml", "seeds = [0, 1e30]\n").string(), PELAB_SOURCE_DIR); });
  EXPECT_TRUE(contains(e, "'seeds' holds a non-integer")) << e;
  // In range, a float was silently truncated before; it is refused the same way now. (The UB
  // itself shows only under UBSan: the input is in tests/fuzz/corpus/plan, replayed by every
  // `make fuzz`.)
  e = error_of<ConfigError>(
      [&] { load_plan(write("r.toml", "workers = 2.0\n").string(), PELAB_SOURCE_DIR); });
  EXPECT_TRUE(contains(e, "'workers' must be an integer in [1, 64]")) << e;
}

// A file name longer than the OS allows (NAME_MAX, 255 bytes here) makes std::filesystem throw
// filesystem_error (ENAMETOOLONG) instead of answering "no such file". The sweep fuzzer found it
// in a sweep's base; every loader of a user-named path must answer with its own clear error.
TEST_F(FuzzRegression, PathsWithAFileNameTooLongForTheOsAreRefusedAsNotFound) {
  const std::string long_name = std::string(300, 'N') + ".toml";
  const fs::path sweep =
      write("sweeps/nested.toml", "name = \"nested\"\nbase = \"../" + long_name + "\"\n");
  std::string e = error_of<ConfigError>([&] { parse_sweep_file(sweep); });
  EXPECT_TRUE(contains(e, "not found")) << e;
  EXPECT_TRUE(contains(e, "accepted: a TOML config file")) << e;

  e = error_of<ConfigError>([&] { parse_sweep_file(dir_ / long_name); });
  EXPECT_TRUE(contains(e, "does not exist")) << e;

  const fs::path plan = write("plan.toml", "base = \"" + long_name + "\"\n");
  e = error_of<ConfigError>([&] { load_plan(plan.string(), PELAB_SOURCE_DIR); });
  EXPECT_TRUE(contains(e, "not found")) << e;

  e = error_of<ConfigError>([&] { load_plan(long_name, PELAB_SOURCE_DIR); });
  EXPECT_TRUE(contains(e, "accepted:")) << e;

  e = error_of<CheckpointError>([&] { load_checkpoint(dir_ / (long_name + ".pt")); });
  EXPECT_TRUE(contains(e, "no checkpoint")) << e;
}

}  // namespace
}  // namespace pelab
