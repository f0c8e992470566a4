// Existence checks for paths that come from a user's file or command line.
// std::filesystem's throwing overloads raise filesystem_error for names the OS refuses outright
// (ENAMETOOLONG, ELOOP, EACCES on a parent folder). For a path the user typed that is the same
// answer as "not there": the caller's own error (ConfigError, DataFileError, ...) names the path
// and what is accepted. The fuzzer found a sweep whose 300-byte base name escaped as
// filesystem_error (test FuzzRegression.PathsWithAFileNameTooLongForTheOsAreRefusedAsNotFound).
#pragma once

#include <filesystem>
#include <system_error>

namespace pelab {

inline bool user_file_exists(const std::filesystem::path& path) noexcept {
  std::error_code ignored;
  return std::filesystem::is_regular_file(path, ignored);
}

inline bool user_path_exists(const std::filesystem::path& path) noexcept {
  std::error_code ignored;
  return std::filesystem::exists(path, ignored);
}

}  // namespace pelab
