// Resume from any moment (issue 11): kill -9 before the first checkpoint, inside an epoch and
// inside a checkpoint write, and SIGTERM; every resumed run must end with the uninterrupted
// run's per-epoch numbers, exactly.
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <random>
#include <sstream>

#include "process.h"
#include "test_files.h"
#include "train/interrupt.h"
#include "train/trainer.h"

using namespace pelab;
namespace fs = std::filesystem;
namespace tp = pelab::test_process;

using pelab::test_files::fresh_test_dir;
using pelab::test_files::read_whole_file;

namespace {

// Dropout on, so the RNG state in a mid-epoch checkpoint matters; 1280 samples at batch 32 give
// 32 steps per epoch, so a kill lands inside an epoch more often than not.
const std::vector<std::string> kRun = {"--config",
                                       std::string(PELAB_SOURCE_DIR) + "/configs/tiny.toml",
                                       "task.samples=1280",
                                       "train.epochs=3",
                                       "train.threads=1",
                                       "model.dropout=0.1",
                                       "model.attention_dropout=0.1"};

std::vector<std::string> train_args(const fs::path& run_dir, const std::string& every_s) {
  std::vector<std::string> args{"train"};
  args.insert(args.end(), kRun.begin(), kRun.end());
  args.push_back("train.checkpoint_every_s=" + every_s);
  args.insert(args.end(), {"--out", run_dir.string(), "--no-progress"});
  return args;
}

std::vector<std::string> resume_args(const fs::path& run_dir) {
  return {"train", "--resume", run_dir.string(), "--no-progress"};
}

// Runs to the end (resuming), returns the exit code of the last attempt.
int finish(const fs::path& run_dir, const fs::path& log) {
  return tp::wait_exit(tp::start(resume_args(run_dir), log));
}

// The uninterrupted run, trained once per test program. ctest runs each test as its own
// process, several at once, so each process trains it in a folder of its own.
const std::vector<EpochMetrics>& reference() {
  static const std::vector<EpochMetrics> history = [] {
    const fs::path dir = fresh_test_dir("resume_reference_" + std::to_string(::getpid()));
    const int code = tp::wait_exit(tp::start(train_args(dir / "run", "0"), dir / "log"));
    EXPECT_EQ(code, 0) << read_whole_file(dir / "log");
    return metrics_from_json(read_whole_file(dir / "run" / "metrics.json"));
  }();
  return history;
}

void expect_reference_numbers(const fs::path& run_dir, const fs::path& log) {
  const auto& want = reference();
  ASSERT_EQ(want.size(), 3u);
  const auto got = metrics_from_json(read_whole_file(run_dir / "metrics.json"));
  ASSERT_EQ(got.size(), want.size()) << read_whole_file(log);
  for (std::size_t e = 0; e < want.size(); ++e) {
    EXPECT_EQ(got[e].train_loss, want[e].train_loss) << "epoch " << e + 1;
    EXPECT_EQ(got[e].train_accuracy, want[e].train_accuracy) << "epoch " << e + 1;
    EXPECT_EQ(got[e].test_loss, want[e].test_loss) << "epoch " << e + 1;
    EXPECT_EQ(got[e].test_accuracy, want[e].test_accuracy) << "epoch " << e + 1;
    EXPECT_EQ(got[e].lr, want[e].lr) << "epoch " << e + 1;
  }
  // The final weights too, through the checkpoint's own history and step count.
  const TrainState state = load_checkpoint(checkpoint_path(run_dir));
  EXPECT_EQ(state.epochs_done, 3);
  EXPECT_EQ(state.epoch_progress.step, 0);
}

// Kills `pid` with SIGKILL and reaps it.
void kill9(pid_t pid) {
  kill(pid, SIGKILL);
  EXPECT_EQ(tp::wait_exit(pid), 128 + SIGKILL);
}

const std::pair<std::string, std::string> kPauseInWrite{"PELAB_TEST_PAUSE_CHECKPOINT_WRITE", "30"};
const std::pair<std::string, std::string> kSlowSteps{"PELAB_TEST_PAUSE_TRAIN_STEP", "0.02"};

}  // namespace

// Killed inside its first checkpoint write: the folder holds config.toml and a half-written
// temporary file but no checkpoint; resume starts from step 0 and ignores the temporary file.
TEST(Resume, KilledBeforeTheFirstCheckpointStartsFromStepZero) {
  const fs::path dir = fresh_test_dir("resume_first"), run = dir / "run", log = dir / "log";
  const fs::path tmp = checkpoint_path(run).string() + ".tmp";
  const pid_t pid = tp::start(train_args(run, "0"), log, {kPauseInWrite});
  ASSERT_TRUE(tp::wait_for(pid, [&] { return fs::exists(tmp); })) << read_whole_file(log);
  kill9(pid);
  ASSERT_TRUE(fs::exists(run / "config.toml"));
  ASSERT_FALSE(fs::exists(checkpoint_path(run)));
  ASSERT_EQ(finish(run, log), 0) << read_whole_file(log);
  expect_reference_numbers(run, log);
}

// A checkpoint inside the first epoch, then a kill inside a later checkpoint write (the old
// checkpoint must survive it), then resume: step-exact.
TEST(Resume, KilledInsideAnEpochAndInsideACheckpointWrite) {
  const fs::path dir = fresh_test_dir("resume_mid"), run = dir / "run", log = dir / "log";
  const fs::path tmp = checkpoint_path(run).string() + ".tmp";
  // Every step checkpoints (0.001 s); each write pauses, so the kill lands inside the second.
  pid_t pid =
      tp::start(train_args(run, "0.001"), log, {{"PELAB_TEST_PAUSE_CHECKPOINT_WRITE", "0.3"}});
  ASSERT_TRUE(tp::wait_for(pid, [&] { return fs::exists(checkpoint_path(run)); }))
      << read_whole_file(log);
  ASSERT_TRUE(tp::wait_for(pid, [&] { return fs::exists(tmp); })) << read_whole_file(log);
  kill9(pid);
  const TrainState at_kill = load_checkpoint(checkpoint_path(run));
  EXPECT_EQ(at_kill.epochs_done, 0);
  EXPECT_GE(at_kill.epoch_progress.step, 1);
  EXPECT_EQ(at_kill.steps_done, at_kill.epoch_progress.step);
  ASSERT_EQ(finish(run, log), 0) << read_whole_file(log);
  expect_reference_numbers(run, log);
}

// Kills at seeded random moments (0 to 1.5 s after each start), resuming after each, until
// the run completes.
TEST(Resume, KilledAtRandomMomentsEndsWithTheUninterruptedNumbers) {
  const fs::path dir = fresh_test_dir("resume_random"), run = dir / "run", log = dir / "log";
  std::mt19937 rng(11);
  std::uniform_int_distribution<int> delay_ms(0, 1500);
  int kills = 0, code = -1;
  for (int attempt = 0; attempt < 6 && code != 0; ++attempt) {
    // 5 ms per step: the 120 steps span about 1 s, so kills land anywhere in the run.
    const std::pair<std::string, std::string> steps{"PELAB_TEST_PAUSE_TRAIN_STEP", "0.005"};
    // Killed before it wrote its config, the run is started again, as a user would.
    const pid_t pid = fs::exists(run / "config.toml")
                          ? tp::start(resume_args(run), log, {steps})
                          : tp::start(train_args(run, "0.05"), log, {steps});
    std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms(rng)));
    kill(pid, SIGKILL);
    code = tp::wait_exit(pid);
    kills += code == 128 + SIGKILL;
  }
  EXPECT_GE(kills, 3);
  if (code != 0) {
    const auto args = fs::exists(run / "config.toml") ? resume_args(run) : train_args(run, "0.05");
    ASSERT_EQ(tp::wait_exit(tp::start(args, log)), 0) << read_whole_file(log);
  }
  expect_reference_numbers(run, log);
}

// SIGTERM (Slurm's warning before preemption or the time limit): a checkpoint of the last step,
// exit code 75 and a message naming the resume command; the resumed run is exact.
TEST(Resume, SigtermWritesACheckpointAndExitsWithTheResumeHint) {
  const fs::path dir = fresh_test_dir("resume_sigterm"), run = dir / "run", log = dir / "log";
  // No periodic checkpoints: the only one before the first epoch ends is SIGTERM's. Steps are
  // slowed to 20 ms so the signal lands inside the first epoch (40 steps) on any machine.
  const pid_t pid = tp::start(train_args(run, "0"), log, {kSlowSteps});
  ASSERT_TRUE(tp::wait_for(pid, [&] { return fs::exists(run / "config.toml"); }));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  kill(pid, SIGTERM);
  ASSERT_EQ(tp::wait_exit(pid), kExitInterrupted) << read_whole_file(log);
  const std::string message = read_whole_file(log);
  EXPECT_NE(message.find("pelab train --resume " + run.string()), std::string::npos) << message;
  const TrainState state = load_checkpoint(checkpoint_path(run));
  EXPECT_LT(state.epochs_done, 3);
  EXPECT_GT(state.steps_done, 0);
  ASSERT_EQ(finish(run, log), 0) << read_whole_file(log);
  expect_reference_numbers(run, log);
}

TEST(Resume, CheckpointEveryIsAConfigKeyWithItsRange) {
  EXPECT_EQ(Config{}.train.checkpoint_every_s, 300);
  Config c;
  apply_override(c, "train.checkpoint_every_s=0.5");
  EXPECT_EQ(c.train.checkpoint_every_s, 0.5);
  EXPECT_THROW(apply_override(c, "train.checkpoint_every_s=-1"), ConfigError);
  EXPECT_THROW(apply_override(c, "train.checkpoint_every_s=often"), ConfigError);
}

// A checkpoint whose step lies beyond its epoch is refused with a message, not trained on.
TEST(Resume, CheckpointPositionBeyondTheEpochIsRefused) {
  const fs::path dir = fresh_test_dir("resume_beyond");
  Config config = load_config(std::string(PELAB_SOURCE_DIR) + "/configs/tiny.toml",
                              {"task.samples=96", "train.epochs=1", "train.threads=1"});
  TrainState state = fresh_state(config);
  state.epoch_progress.step = 1000;
  save_checkpoint(state, checkpoint_path(dir));
  write_file_atomically(dir / "config.toml", to_toml(config));
  TrainOptions quiet;
  quiet.progress = false;
  quiet.quiet = true;
  try {
    resume_run(dir, quiet);
    FAIL() << "no error";
  } catch (const CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find("step 1000"), std::string::npos) << e.what();
  }
}
