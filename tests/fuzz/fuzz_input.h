// Shared by the fuzz targets: the loaders read files, so each input is written to a file in a
// private scratch folder (in /dev/shm when there is one: no disk writes per execution).
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

namespace pelab::fuzz {

// A scratch folder created once per process and removed at a normal exit.
class Scratch {
 public:
  Scratch() {
    std::filesystem::path base = "/dev/shm";
    if (access(base.c_str(), W_OK) != 0) base = std::filesystem::temp_directory_path();
    std::string pattern = (base / "pelab-fuzz-XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr) {
      std::perror("pelab fuzz: mkdtemp");
      std::abort();
    }
    dir_ = pattern;
  }
  ~Scratch() {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  const std::filesystem::path& dir() const { return dir_; }

 private:
  std::filesystem::path dir_;
};

inline const Scratch& scratch() {
  static Scratch s;
  return s;
}

inline void write_bytes(const std::filesystem::path& file, std::string_view bytes) {
  std::filesystem::create_directories(file.parent_path());
  std::ofstream out(file, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) {
    std::fprintf(stderr, "pelab fuzz: cannot write %s\n", file.c_str());
    std::abort();
  }
}

// The repository's configs/*.toml copied to scratch()/configs, so that sweep files and plans that
// name a base config ("../tiny.toml") find a real one.
inline void copy_repository_configs() {
  namespace fs = std::filesystem;
  const fs::path source = fs::path(PELAB_SOURCE_DIR) / "configs";
  const fs::path target = scratch().dir() / "configs";
  fs::create_directories(target);
  for (const auto& entry : fs::directory_iterator(source))
    if (entry.is_regular_file() && entry.path().extension() == ".toml")
      fs::copy_file(entry.path(), target / entry.path().filename(),
                    fs::copy_options::overwrite_existing);
}

// A loader broke its contract: it threw something other than its documented error type.
[[noreturn]] inline void undocumented_exception(const char* what) {
  std::fprintf(stderr, "pelab fuzz: undocumented exception escaped the loader: %s\n", what);
  std::abort();
}

}  // namespace pelab::fuzz
