// Running the built pelab binary from tests, as a user would (PELAB_BINARY is set by CMake).
#pragma once

#include <sys/wait.h>

#include <array>
#include <cstdio>
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

}  // namespace pelab::test_cli
