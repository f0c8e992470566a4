// Stopping training at any moment without losing it.
//
// SIGTERM (Slurm's preemption and time-limit warning, `kill`) and SIGINT (Ctrl-C) only set a
// flag; the trainer reads it after every optimiser step, writes a checkpoint and throws
// TrainingInterrupted, which the CLI turns into exit code kExitInterrupted (75, EX_TEMPFAIL: "try
// again later") and a message saying how to resume. A second Ctrl-C kills at once.
//
// CheckpointClock is the wall clock of train.checkpoint_every_s: a checkpoint inside an epoch is
// due when that many seconds passed since the last one. Together with the step within the epoch
// and the RNG state in the checkpoint this makes resume step-exact.
#pragma once

#include <chrono>
#include <filesystem>
#include <stdexcept>
#include <string>

namespace pelab {

// pelab's exit code for "stopped by a signal after writing a checkpoint; resume to continue".
inline constexpr int kExitInterrupted = 75;

class TrainingInterrupted : public std::runtime_error {
 public:
  TrainingInterrupted(int signal, const std::filesystem::path& run_dir);
  int signal() const { return signal_; }
  const std::filesystem::path& run_dir() const { return run_dir_; }

 private:
  int signal_;
  std::filesystem::path run_dir_;
};

// While alive, SIGTERM and SIGINT set the flag interrupt_signal() reads (the previous handlers
// come back afterwards). Scopes may nest; only the outermost installs handlers.
class InterruptScope {
 public:
  InterruptScope();
  ~InterruptScope();
  InterruptScope(const InterruptScope&) = delete;
  InterruptScope& operator=(const InterruptScope&) = delete;
};

// The signal that asked training to stop (0 = none yet).
int interrupt_signal();

class CheckpointClock {
 public:
  // every_s <= 0: never due (checkpoints only at epoch ends).
  explicit CheckpointClock(double every_s) : every_s_(every_s), last_(Clock::now()) {}
  bool due() const {
    return every_s_ > 0 && std::chrono::duration<double>(Clock::now() - last_).count() >= every_s_;
  }
  void restart() { last_ = Clock::now(); }

 private:
  using Clock = std::chrono::steady_clock;
  double every_s_;
  Clock::time_point last_;
};

// Test hook: sleeps for the seconds in the environment variable PELAB_TEST_PAUSE_<point> (if
// set), so tests can kill the process at a chosen moment: "CHECKPOINT_WRITE" (between writing
// checkpoint.pt.tmp and renaming it), "TRAIN_STEP" (after every optimiser step). Costs one
// getenv when unset.
void test_pause(const char* point);

}  // namespace pelab
