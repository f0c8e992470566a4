// Worker processes for sweeps: each run trains in its own process running the pelab binary, so
// runs share the cores without sharing a heap, and a crash or a kill takes down one run only.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace pelab {

struct WorkerCommand {
  std::vector<std::string> argv;                         // argv[0] is the program
  std::vector<std::pair<std::string, std::string>> env;  // added to (or replacing) ours
  std::filesystem::path log_file;                        // stdout and stderr, appended
};

struct WorkerExit {
  int exit_code = 0;        // the exit status, or 128 + signal when killed by one
  std::string description;  // "exit code 2", "killed by signal 9 (Killed)"
};

// Starts the command (fork, then at once exec: nothing but system calls runs in the child, so
// OpenMP or other threads in this process do not matter). The child is killed when this process
// dies (PR_SET_PDEATHSIG), so a killed sweep leaves no orphan writing into a run folder that a
// re-run will resume. Throws std::runtime_error when the log cannot be opened or fork fails.
pid_t start_worker(const WorkerCommand& command);

// Non-blocking: the worker's exit once it ended, nothing while it runs.
std::optional<WorkerExit> poll_worker(pid_t pid);

// Sends `signal` to the worker; then poll_worker or wait_worker reaps it.
void signal_worker(pid_t pid, int signal);
WorkerExit wait_worker(pid_t pid);

// The last max_bytes of a file, starting at a line boundary ("" if unreadable).
std::string file_tail(const std::filesystem::path& file, size_t max_bytes);

}  // namespace pelab
