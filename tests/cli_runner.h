// Running the built pelab binary from tests, as a user would (PELAB_BINARY is set by CMake).
#pragma once

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

namespace pelab::test_cli {

struct Result {
  int status;          // exit code
  std::string output;  // stdout, and stderr unless dropped
};

inline Result run(const std::string& args, bool with_stderr = true) {
  const std::string command =
      std::string(PELAB_BINARY) + " " + args + (with_stderr ? " 2>&1" : " 2>/dev/null");
  Result r{0, ""};
  FILE* pipe = popen(command.c_str(), "r");
  std::array<char, 4096> buffer;
  while (fgets(buffer.data(), buffer.size(), pipe)) r.output += buffer.data();
  r.status = WEXITSTATUS(pclose(pipe));
  return r;
}

// A fresh one-epoch tiny run in TempDir()/folder with the given key=value overrides; each test
// names its own folder because ctest runs tests in parallel.
inline std::filesystem::path train_tiny_run(const std::string& folder,
                                            const std::string& overrides) {
  const auto dir = std::filesystem::path(::testing::TempDir()) / folder;
  std::filesystem::remove_all(dir);
  const auto r =
      run("train --config " + std::string(PELAB_SOURCE_DIR) + "/configs/tiny.toml " + overrides +
          " task.samples=120 train.epochs=1 train.threads=1 --no-progress --out " + dir.string());
  EXPECT_EQ(r.status, 0) << r.output;
  return dir;
}

// A command's stdout parsed as JSON; the command must succeed.
inline nlohmann::json json_of(const std::string& args) {
  const auto r = run(args, false);
  EXPECT_EQ(r.status, 0) << args << "\n" << r.output;
  return nlohmann::json::parse(r.output);
}

}  // namespace pelab::test_cli
