#include "train/interrupt.h"

#include <fmt/format.h>
#include <signal.h>

#include <cstdlib>
#include <cstring>
#include <thread>

namespace pelab {

namespace {

volatile sig_atomic_t g_signal = 0;
int g_depth = 0;
struct sigaction g_old_int {
}, g_old_term{};

void on_signal(int sig) {
  if (g_signal != 0 && sig == SIGINT) {
    // A second Ctrl-C: the user does not want to wait for the checkpoint.
    signal(sig, SIG_DFL);
    raise(sig);
    return;
  }
  g_signal = sig;
}

}  // namespace

TrainingInterrupted::TrainingInterrupted(int signal, const std::filesystem::path& run_dir)
    : std::runtime_error(fmt::format(
          "stopped by signal {} ({}); a checkpoint of the last step is in '{}': continue it with "
          "`pelab train --resume {}`",
          signal, strsignal(signal), run_dir.string(), run_dir.string())),
      signal_(signal),
      run_dir_(run_dir) {}

InterruptScope::InterruptScope() {
  if (g_depth++ > 0) return;
  g_signal = 0;
  struct sigaction action {};
  action.sa_handler = on_signal;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, &g_old_int);
  sigaction(SIGTERM, &action, &g_old_term);
}

InterruptScope::~InterruptScope() {
  if (--g_depth > 0) return;
  sigaction(SIGINT, &g_old_int, nullptr);
  sigaction(SIGTERM, &g_old_term, nullptr);
}

int interrupt_signal() { return g_signal; }

void test_pause(const char* point) {
  const char* seconds = std::getenv((std::string("PELAB_TEST_PAUSE_") + point).c_str());
  if (!seconds) return;
  std::this_thread::sleep_for(std::chrono::duration<double>(std::atof(seconds)));
}

}  // namespace pelab
