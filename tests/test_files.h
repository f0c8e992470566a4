// Files and folders for tests: one definition each, shared by every test file (the unity build
// puts several test files in one translation unit, so file-local copies would collide).
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace pelab::test_files {

// TempDir()/pelab_<name>, emptied; created unless `create` is false (for a folder that the code
// under test must create itself).
inline std::filesystem::path fresh_test_dir(const std::string& name, bool create = true) {
  const std::filesystem::path dir = std::filesystem::path(::testing::TempDir()) / ("pelab_" + name);
  std::filesystem::remove_all(dir);
  if (create) std::filesystem::create_directories(dir);
  return dir;
}

// configs/tiny.toml, the smallest model and task, as an absolute path.
inline std::string tiny_config_file() {
  return std::string(PELAB_SOURCE_DIR) + "/configs/tiny.toml";
}

// A whole file as text ("" when it cannot be read).
inline std::string read_whole_file(const std::filesystem::path& file) {
  std::ifstream in(file);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace pelab::test_files
