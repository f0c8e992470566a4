#include "sweep/worker.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <stdexcept>

extern char** environ;

namespace pelab {

namespace {

WorkerExit decode(int status) {
  WorkerExit e;
  if (WIFEXITED(status)) {
    e.exit_code = WEXITSTATUS(status);
    e.description = fmt::format("exit code {}", e.exit_code);
  } else if (WIFSIGNALED(status)) {
    const int sig = WTERMSIG(status);
    e.exit_code = 128 + sig;
    e.description = fmt::format("killed by signal {} ({})", sig, strsignal(sig));
  } else {
    e.exit_code = 255;
    e.description = fmt::format("ended with wait status {}", status);
  }
  return e;
}

}  // namespace

pid_t start_worker(const WorkerCommand& command) {
  // Everything the child needs is prepared here: after fork only async-signal-safe calls.
  std::vector<std::string> env_strings;
  for (char** e = environ; *e; ++e) {
    const std::string entry(*e);
    const std::string name = entry.substr(0, entry.find('='));
    bool replaced = false;
    for (const auto& [k, v] : command.env) replaced |= k == name;
    if (!replaced) env_strings.push_back(entry);
  }
  for (const auto& [k, v] : command.env) env_strings.push_back(k + "=" + v);
  std::vector<char*> envp, argv;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<std::string> args = command.argv;
  for (auto& s : args) argv.push_back(s.data());
  argv.push_back(nullptr);

  const int log_fd =
      open(command.log_file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0)
    throw std::runtime_error(fmt::format("cannot open the worker log '{}': {}",
                                         command.log_file.string(), std::strerror(errno)));
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);  // the parent died before prctl took effect
    dup2(log_fd, STDOUT_FILENO);
    dup2(log_fd, STDERR_FILENO);
    const int null_fd = open("/dev/null", O_RDONLY);
    if (null_fd >= 0) dup2(null_fd, STDIN_FILENO);
    execve(argv[0], argv.data(), envp.data());
    const char message[] = "pelab sweep: cannot execute the worker binary\n";
    (void)!write(STDERR_FILENO, message, sizeof(message) - 1);
    _exit(127);
  }
  const int fork_errno = errno;
  close(log_fd);
  if (pid < 0)
    throw std::runtime_error(
        fmt::format("cannot start a worker process: {}", std::strerror(fork_errno)));
  return pid;
}

std::optional<WorkerExit> poll_worker(pid_t pid) {
  int status = 0;
  pid_t r;
  do r = waitpid(pid, &status, WNOHANG);
  while (r < 0 && errno == EINTR);
  if (r == 0) return std::nullopt;
  if (r < 0) return WorkerExit{255, fmt::format("lost: {}", std::strerror(errno))};
  return decode(status);
}

void signal_worker(pid_t pid, int signal) { kill(pid, signal); }

WorkerExit wait_worker(pid_t pid) {
  int status = 0;
  pid_t r;
  do r = waitpid(pid, &status, 0);
  while (r < 0 && errno == EINTR);
  if (r < 0) return WorkerExit{255, fmt::format("lost: {}", std::strerror(errno))};
  return decode(status);
}

std::string file_tail(const std::filesystem::path& file, size_t max_bytes) {
  std::ifstream in(file, std::ios::binary);
  if (!in) return "";
  in.seekg(0, std::ios::end);
  const auto size = static_cast<size_t>(in.tellg());
  const size_t start = size > max_bytes ? size - max_bytes : 0;
  in.seekg(static_cast<std::streamoff>(start));
  std::string text(size - start, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  if (start > 0) {
    const auto newline = text.find('\n');
    if (newline != std::string::npos) text = text.substr(newline + 1);
  }
  return text;
}

}  // namespace pelab
