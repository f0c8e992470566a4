// The safetensors writer and reader: round trips, the header bytes checked by hand, and refusal of
// damaged files with messages naming the file and the problem.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>

#include "train/safetensors.h"

namespace pelab {
namespace {

namespace fs = std::filesystem;

class Safetensors : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("pelab_st_" + std::to_string(std::random_device{}()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  static std::string read_bytes(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  }
  static void write_bytes(const fs::path& p, const std::string& bytes) {
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  }
  static std::string le64(uint64_t n) {
    std::string s(8, '\0');
    for (int i = 0; i < 8; ++i) s[i] = static_cast<char>((n >> (8 * i)) & 0xff);
    return s;
  }
  // A file with the given header text and data bytes.
  static std::string make_file(const std::string& header, const std::string& data) {
    return le64(header.size()) + header + data;
  }
  // Expects read_safetensors(p) to throw a runtime_error naming p and containing `problem`.
  static void expect_refused(const fs::path& p, const std::string& problem) {
    try {
      read_safetensors(p);
      ADD_FAILURE() << "no error for " << problem;
    } catch (const std::runtime_error& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find(p.string()), std::string::npos) << msg;
      EXPECT_NE(msg.find(problem), std::string::npos) << msg;
    }
  }

  fs::path dir_;
};

TEST_F(Safetensors, RoundTrip) {
  torch::manual_seed(0);
  const auto f32 = torch::randn({3, 4});
  const auto f64 = torch::randn({2, 3, 2}, torch::kFloat64);
  const auto i64 = torch::arange(-5, 5, torch::kInt64);
  const auto scalar = torch::tensor(2.5f).reshape({});
  const auto base = torch::randn({4, 6});
  const auto strided = base.t().slice(0, 1, 5, 2);  // non-contiguous [2, 4]
  ASSERT_FALSE(strided.is_contiguous());
  const auto empty = torch::zeros({0, 3});
  const auto flags = torch::tensor({true, false, true});
  const auto half = torch::randn({5}).to(torch::kBFloat16);
  const auto i32 = torch::tensor({7, -8, 9}, torch::kInt32);
  const std::vector<std::pair<std::string, torch::Tensor>> tensors = {
      {"z.f32", f32},   {"a.f64", f64},   {"m.i64", i64}, {"scalar", scalar}, {"strided", strided},
      {"empty", empty}, {"flags", flags}, {"bf16", half}, {"i32", i32},
  };
  const std::map<std::string, std::string> meta = {{"config", "[model]\npe = \"rope\"\n"},
                                                   {"step", "17"}};
  const fs::path p = dir_ / "ckpt.safetensors";
  write_safetensors(p, tensors, meta);
  EXPECT_FALSE(fs::exists(p.string() + ".tmp"));

  const SafetensorsFile f = read_safetensors(p);
  EXPECT_EQ(f.metadata, meta);
  ASSERT_EQ(f.tensors.size(), tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    SCOPED_TRACE(tensors[i].first);
    EXPECT_EQ(f.tensors[i].first, tensors[i].first);  // writing order preserved
    const auto& got = f.tensors[i].second;
    EXPECT_EQ(got.scalar_type(), tensors[i].second.scalar_type());
    EXPECT_EQ(got.sizes(), tensors[i].second.sizes());
    EXPECT_TRUE(got.equal(tensors[i].second));
  }
  EXPECT_EQ(f.tensors[3].second.dim(), 0);

  // Overwriting an existing file works (atomic rename over it).
  write_safetensors(p, {{"only", i64}}, {});
  const SafetensorsFile g = read_safetensors(p);
  EXPECT_TRUE(g.metadata.empty());
  ASSERT_EQ(g.tensors.size(), 1u);
  EXPECT_TRUE(g.tensors[0].second.equal(i64));
}

TEST_F(Safetensors, HeaderBytesParsedByHand) {
  const auto a = torch::tensor({1.0f, 2.0f, 3.0f});
  const auto b = torch::tensor({{1, 2}, {3, 4}}, torch::kInt64);
  const auto c = torch::tensor(0.5, torch::kFloat64).reshape({});
  const fs::path p = dir_ / "h.safetensors";
  write_safetensors(p, {{"a", a}, {"b", b}, {"c", c}}, {{"k", "v"}});
  const std::string bytes = read_bytes(p);
  ASSERT_GE(bytes.size(), 8u);
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i)
    n |= static_cast<uint64_t>(static_cast<unsigned char>(bytes[i])) << (8 * i);
  EXPECT_EQ(n % 8, 0u);
  ASSERT_EQ(bytes.size(), 8 + n + 12 + 32 + 8);
  const std::string header = bytes.substr(8, n);
  EXPECT_EQ(header.front(), '{');
  const auto j = nlohmann::json::parse(header);
  EXPECT_EQ(j["__metadata__"], (nlohmann::json{{"k", "v"}}));
  EXPECT_EQ(j["a"]["dtype"], "F32");
  EXPECT_EQ(j["a"]["shape"], (nlohmann::json{3}));
  EXPECT_EQ(j["a"]["data_offsets"], (nlohmann::json{0, 12}));
  EXPECT_EQ(j["b"]["dtype"], "I64");
  EXPECT_EQ(j["b"]["shape"], (nlohmann::json{2, 2}));
  EXPECT_EQ(j["b"]["data_offsets"], (nlohmann::json{12, 44}));
  EXPECT_EQ(j["c"]["dtype"], "F64");
  EXPECT_EQ(j["c"]["shape"], nlohmann::json::array());
  EXPECT_EQ(j["c"]["data_offsets"], (nlohmann::json{44, 52}));
  // Raw little-endian data.
  const std::string data = bytes.substr(8 + n);
  float a1 = 0;
  std::memcpy(&a1, data.data() + 4, 4);
  EXPECT_EQ(a1, 2.0f);
  EXPECT_EQ(static_cast<unsigned char>(data[12 + 8 * 3]), 4);  // b[1][1] = 4, low byte first
  double cv = 0;
  std::memcpy(&cv, data.data() + 44, 8);
  EXPECT_EQ(cv, 0.5);
}

TEST_F(Safetensors, RefusesDamagedFiles) {
  const fs::path good = dir_ / "good.safetensors";
  write_safetensors(good, {{"w", torch::ones({4})}, {"v", torch::zeros({2}, torch::kInt64)}}, {});
  const std::string bytes = read_bytes(good);
  const fs::path p = dir_ / "bad.safetensors";

  write_bytes(p, bytes.substr(0, 5));
  expect_refused(p, "too short");
  write_bytes(p, bytes.substr(0, 20));  // header cut off
  expect_refused(p, "beyond the end of the file");
  write_bytes(p, bytes.substr(0, bytes.size() - 3));  // data cut off
  expect_refused(p, "out of range");

  std::string corrupt = bytes;
  corrupt[8] = '#';  // the header's opening brace
  write_bytes(p, corrupt);
  expect_refused(p, "not valid JSON");

  const std::string data(32, '\0');
  write_bytes(p, make_file(R"({"w":{"dtype":"F33","shape":[8],"data_offsets":[0,32]}})", data));
  expect_refused(p, "unknown dtype 'F33'");
  write_bytes(p, make_file(R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,32]}})", data));
  expect_refused(p, "need 16");
  write_bytes(p, make_file(R"({"w":{"dtype":"F32","shape":[8],"data_offsets":[0,64]}})", data));
  expect_refused(p, "out of range");
  write_bytes(p, make_file(R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},)"
                           R"("v":{"dtype":"F32","shape":[4],"data_offsets":[8,24]}})",
                           data));
  expect_refused(p, "overlaps");
  write_bytes(p, make_file(R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[16,32]}})", data));
  expect_refused(p, "hole");
  write_bytes(p, make_file(R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", data));
  expect_refused(p, "cover 16 bytes");
  write_bytes(p, make_file(R"({"w":{"dtype":"F32","shape":[-4],"data_offsets":[0,16]}})", data));
  expect_refused(p, "shape");
  write_bytes(p, make_file(R"({"w":{"dtype":"F32","shape":[4]}})", data));
  expect_refused(p, "data_offsets");
  write_bytes(p, make_file(R"({"__metadata__":{"x":1}})", ""));
  expect_refused(p, "__metadata__");
  write_bytes(p, make_file("[1, 2]", ""));
  expect_refused(p, "not a JSON object");
  expect_refused(dir_ / "missing.safetensors", "cannot read");
}

TEST_F(Safetensors, WriterRefusesBadInput) {
  const fs::path p = dir_ / "w.safetensors";
  const auto t = torch::ones({2});
  EXPECT_THROW(write_safetensors(p, {{"a", t}, {"a", t}}, {}), std::runtime_error);
  EXPECT_THROW(write_safetensors(p, {{"__metadata__", t}}, {}), std::runtime_error);
  EXPECT_THROW(write_safetensors(p, {{"c", torch::ones({2}, torch::kComplexFloat)}}, {}),
               std::runtime_error);
  EXPECT_FALSE(fs::exists(p));
  // Unwritable destination: the error names the path and no temporary file is left behind.
  const fs::path bad = dir_ / "no_such_dir" / "x.safetensors";
  try {
    write_safetensors(bad, {{"a", t}}, {});
    ADD_FAILURE() << "no error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(bad.string()), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(bad.string() + ".tmp"));
}

}  // namespace
}  // namespace pelab
