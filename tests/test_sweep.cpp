// Sweeps: grid expansion and validation, and `pelab sweep` end to end: it records every run,
// skips finished ones, resumes unfinished ones, and a sweep killed mid-run completes with the
// same results as one never interrupted.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "cli_runner.h"
#include "store/store.h"
#include "sweep/sweep_runner.h"
#include "sweep/sweep_spec.h"
#include "test_files.h"

namespace fs = std::filesystem;
using namespace pelab;

extern char** environ;

using pelab::test_cli::run;

using pelab::test_files::fresh_test_dir;
using pelab::test_files::read_whole_file;
using pelab::test_files::tiny_config_file;

namespace {

// A tiny sweep file in `dir`; its runs go to dir/runs and its store is dir/pelab.db.
fs::path write_sweep(const fs::path& dir, const std::string& set, const std::string& grid,
                     const std::string& top = "") {
  const fs::path file = dir / "sweep.toml";
  std::ofstream out(file);
  out << "name = \"test\"\nbase = \"" << tiny_config_file() << "\"\nout = \""
      << (dir / "runs").string() << "\"\nstore = \"" << (dir / "pelab.db").string() << "\"\n"
      << top << "\n[set]\n"
      << set << "\n[grid]\n"
      << grid << "\n";
  return file;
}

std::string error_of(const std::function<void()>& body) {
  try {
    body();
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "(no ConfigError)";
}

size_t count_lines(const std::string& text) { return std::count(text.begin(), text.end(), '\n'); }

// Per run: every epoch's numbers that training determines (not its timings).
std::map<std::string, std::vector<std::array<double, 6>>> results_of(const fs::path& store_path) {
  Store store(store_path, Store::Mode::kExisting);
  std::map<std::string, std::vector<std::array<double, 6>>> out;
  for (const auto& r : store.list_runs()) {
    EXPECT_EQ(r.status, RunStatus::kFinished) << r.name;
    for (const auto& m : store.metrics(r.id))
      out[r.name].push_back(
          {double(m.epoch), m.train_loss, m.train_accuracy, m.test_loss, m.test_accuracy, m.lr});
  }
  return out;
}

}  // namespace

TEST(SweepSpec, ParsesAndExpandsTheGrid) {
  const fs::path dir = fresh_test_dir("sweep_expand");
  fs::copy_file(tiny_config_file(), dir / "base.toml");
  const fs::path file = dir / "grid.toml";
  std::ofstream(file) << "name = \"k-heads\"\nbase = \"base.toml\"\nsetup = \"standard\"\n"
                         "[set]\n\"train.epochs\" = 2\ntrain.lr = 0.002\n"
                         "[grid]\n\"train.seed\" = [0, 1]\n\"model.pe\" = [\"nope\", \"rope\"]\n"
                         "model.rotary_heads = [1, 2]\n";
  const SweepSpec spec = parse_sweep_file(file);
  EXPECT_EQ(spec.name, "k-heads");
  EXPECT_EQ(spec.setup, "standard");
  EXPECT_EQ(spec.base_config, dir / "base.toml");  // relative to the sweep file
  EXPECT_EQ(spec.out_dir, fs::path("runs/k-heads"));
  EXPECT_EQ(spec.store_path, fs::path("runs/pelab.db"));
  const auto runs = expand_sweep(spec, 1);
  ASSERT_EQ(runs.size(), 8u);
  // pe first, then the other keys, the seed last; the last key varies fastest.
  EXPECT_EQ(runs[0].name, "nope-rotary_heads=1-s0");
  EXPECT_EQ(runs[1].name, "nope-rotary_heads=1-s1");
  EXPECT_EQ(runs[2].name, "nope-rotary_heads=2-s0");
  EXPECT_EQ(runs[7].name, "rope-rotary_heads=2-s1");
  EXPECT_EQ(runs[7].store_name, "k-heads/rope-rotary_heads=2-s1");
  EXPECT_EQ(runs[7].run_dir, fs::path("runs/k-heads/rope-rotary_heads=2-s1"));
  EXPECT_EQ(runs[7].config.model.pe, "rope");
  EXPECT_EQ(runs[7].config.model.rotary_heads, 2);
  EXPECT_EQ(runs[7].config.train.seed, 1);
  EXPECT_EQ(runs[7].config.train.epochs, 2);
  EXPECT_EQ(runs[7].config.train.lr, 0.002);
  EXPECT_EQ(runs[7].config.train.threads, 1);   // one core per worker
  EXPECT_EQ(runs[7].config.model.d_model, 32);  // from the base
  EXPECT_EQ(expand_sweep(spec, 3)[0].config.train.threads, 3);
}

TEST(SweepSpec, ExampleSweepFilesExpand) {
  int files = 0;
  for (const auto& entry : fs::directory_iterator(fs::path(PELAB_SOURCE_DIR) / "configs/sweeps")) {
    ++files;
    EXPECT_NO_THROW(expand_sweep(parse_sweep_file(entry.path()), 1)) << entry.path();
  }
  EXPECT_GE(files, 1);
}

TEST(SweepSpec, BadFilesNameTheProblem) {
  const fs::path dir = fresh_test_dir("sweep_bad");
  auto expand = [&](const std::string& set, const std::string& grid, const std::string& top = "") {
    return error_of([&] { expand_sweep(parse_sweep_file(write_sweep(dir, set, grid, top)), 1); });
  };
  std::string e = expand("", "", "gird = 1");
  EXPECT_NE(e.find("'gird'"), std::string::npos) << e;
  EXPECT_NE(e.find("did you mean 'grid'"), std::string::npos) << e;
  e = expand("", "\"model.d_modle\" = [8, 16]");
  EXPECT_NE(e.find("model.d_modle"), std::string::npos) << e;
  EXPECT_NE(e.find("model.d_model"), std::string::npos) << e;  // the suggestion
  e = expand("", "\"model.pe\" = [\"rope\", \"rope2\"]");
  EXPECT_NE(e.find("'rope2'"), std::string::npos) << e;
  EXPECT_NE(e.find("run 'rope2'"), std::string::npos) << e;    // which run
  e = expand("", "\"task.distance_between_max\" = [10, 40]");  // cannot fit seq_len 32
  EXPECT_NE(e.find("task.seq_len"), std::string::npos) << e;
  e = expand("", "\"model.pe\" = \"rope\"");
  EXPECT_NE(e.find("grid.model.pe"), std::string::npos) << e;
  EXPECT_NE(e.find("list of values"), std::string::npos) << e;
  e = expand("", "\"train.seed\" = [1, 1]");
  EXPECT_NE(e.find("listed twice"), std::string::npos) << e;
  e = error_of([&] { parse_sweep_file(dir / "nonexistent.toml"); });
  EXPECT_NE(e.find("nonexistent.toml"), std::string::npos) << e;
  std::ofstream(dir / "nobase.toml") << "name = \"x\"\nbase = \"no/such.toml\"\n";
  e = error_of([&] { parse_sweep_file(dir / "nobase.toml"); });
  EXPECT_NE(e.find("no/such.toml"), std::string::npos) << e;
  std::ofstream(dir / "badname.toml") << "name = \"a b\"\n";
  e = error_of([&] { parse_sweep_file(dir / "badname.toml"); });
  EXPECT_NE(e.find("'a b'"), std::string::npos) << e;
  std::ofstream(dir / "syntax.toml") << "name = \"x\n";
  e = error_of([&] { parse_sweep_file(dir / "syntax.toml"); });
  EXPECT_NE(e.find("line 1"), std::string::npos) << e;
}

TEST(SweepCli, BadInputStartsNothing) {
  const fs::path dir = fresh_test_dir("sweep_cli_bad");
  auto file = write_sweep(dir, "", "\"model.pe\" = [\"nope\", \"rope2\"]");
  auto r = run("sweep " + file.string());
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("rope2"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(dir / "runs"));
  EXPECT_FALSE(fs::exists(dir / "pelab.db"));
  file = write_sweep(dir, "", "\"model.pe\" = [\"nope\"]");
  fs::create_directories(dir / "a_folder.db");
  r = run("sweep " + file.string() + " --store " + (dir / "a_folder.db").string());
  EXPECT_EQ(r.status, 4) << r.output;
  EXPECT_NE(r.output.find("a_folder.db"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(dir / "runs"));
  r = run("runs --store " + (dir / "none.db").string());
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("none.db"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(dir / "none.db"));
}

TEST(SweepCli, RecordsRunsSkipsFinishedOnesAndExtendsEpochs) {
  const fs::path dir = fresh_test_dir("sweep_cli_run");
  const std::string set = "\"task.samples\" = 128\n\"train.threads\" = 1\n";
  auto file = write_sweep(dir, set + "\"train.epochs\" = 2", "\"model.pe\" = [\"nope\", \"rope\"]");
  auto r = run("sweep " + file.string() + " --workers 2");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("2 finished now"), std::string::npos) << r.output;
  const std::string db = (dir / "pelab.db").string();
  r = run("runs --store " + db);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("test/nope"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("test/rope"), std::string::npos) << r.output;
  EXPECT_EQ(count_lines(r.output), 3u) << r.output;  // header + 2 runs
  r = run("runs --csv --store " + db);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(count_lines(r.output), 5u) << r.output;  // header + 2 runs x 2 epochs
  EXPECT_EQ(r.output.rfind("run_id,name,sweep,setup,pe,task,seed,status", 0), 0u) << r.output;
  const auto first = results_of(dir / "pelab.db");

  // Again: nothing to do, no worker started.
  r = run("sweep " + file.string() + " --workers 2");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("2 already finished"), std::string::npos) << r.output;
  const std::string log = read_whole_file(dir / "runs" / "nope" / "train.log");
  EXPECT_EQ(log.find("== pelab sweep"), log.rfind("== pelab sweep")) << log;

  // The sweep died after nope's worker ended but before the store heard of it, and while rope's
  // last metrics.json lagged its checkpoint: nope is only recorded, rope's last epoch comes from
  // its checkpoint; nothing retrains.
  {
    Store store(dir / "pelab.db", Store::Mode::kExisting);
    store.mark_queued(store.find_run("test/nope")->id);
    store.mark_running(store.find_run("test/rope")->id);
    const fs::path metrics = dir / "runs" / "rope" / "metrics.json";
    auto epochs = metrics_from_json(read_whole_file(metrics));
    epochs.pop_back();
    write_file_atomically(metrics, metrics_to_json(epochs));
  }
  r = run("sweep " + file.string());
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("1 to record, 1 to resume"), std::string::npos) << r.output;
  EXPECT_EQ(results_of(dir / "pelab.db"), first);

  // More epochs: both runs continue from their checkpoints; the first epochs stay as they were.
  file = write_sweep(dir, set + "\"train.epochs\" = 3", "\"model.pe\" = [\"nope\", \"rope\"]");
  r = run("sweep " + file.string() + " --workers 1");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("2 to resume"), std::string::npos) << r.output;
  const auto extended = results_of(dir / "pelab.db");
  for (const auto& [name, epochs] : first) {
    ASSERT_EQ(extended.at(name).size(), 3u) << name;
    EXPECT_EQ(extended.at(name)[0], epochs[0]) << name;
    EXPECT_EQ(extended.at(name)[1], epochs[1]) << name;
  }
  // A changed config is refused, naming the key, rather than mixed into the old runs.
  file = write_sweep(dir, set + "\"train.epochs\" = 3\n\"train.lr\" = 0.01",
                     "\"model.pe\" = [\"nope\", \"rope\"]");
  r = run("sweep " + file.string());
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("train.lr"), std::string::npos) << r.output;
}

TEST(SweepCli, AFailedRunIsRecordedWithItsError) {
  const fs::path dir = fresh_test_dir("sweep_cli_fail");
  const auto file = write_sweep(dir, "\"task.samples\" = 128\n\"train.epochs\" = 1",
                                "\"model.pe\" = [\"nope\", \"alibi\"]");
  // alibi's folder holds a run whose checkpoint is garbage: its worker fails to resume it.
  const auto runs = expand_sweep(parse_sweep_file(file), threads_per_worker(1));
  fs::create_directories(runs[1].run_dir);
  std::ofstream(runs[1].run_dir / "config.toml") << to_toml(runs[1].config);
  std::ofstream(runs[1].run_dir / "checkpoint.pt") << "not a checkpoint";
  auto r = run("sweep " + file.string());
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("1 failed"), std::string::npos) << r.output;
  Store store(dir / "pelab.db", Store::Mode::kExisting);
  const auto failed = store.find_run("test/alibi");
  ASSERT_TRUE(failed);
  EXPECT_EQ(failed->status, RunStatus::kFailed);
  EXPECT_EQ(failed->exit_code, 3);  // pelab's exit code for checkpoint errors
  EXPECT_NE(failed->error.find("checkpoint"), std::string::npos) << failed->error;
  EXPECT_EQ(store.find_run("test/nope")->status, RunStatus::kFinished);
  r = run("runs --status failed --store " + (dir / "pelab.db").string());
  EXPECT_NE(r.output.find("test/alibi"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("test/nope"), std::string::npos) << r.output;
}

// The sweep is SIGKILLed (no chance to clean up) once one run has finished and another is part
// way through; re-running it must finish with exactly the numbers of a sweep never interrupted.
TEST(SweepCli, KilledSweepResumesToTheSameResults) {
  const std::string set = "\"task.samples\" = 192\n\"train.epochs\" = 5\n\"train.threads\" = 1\n";
  const std::string grid = "\"model.pe\" = [\"nope\", \"rope\"]";
  const fs::path whole = fresh_test_dir("sweep_kill_whole"),
                 killed = fresh_test_dir("sweep_kill_killed");
  auto r = run("sweep " + write_sweep(whole, set, grid).string() + " --workers 2");
  ASSERT_EQ(r.status, 0) << r.output;

  const fs::path file = write_sweep(killed, set, grid);
  const std::string binary = PELAB_BINARY, log = (killed / "sweep.log").string();
  std::vector<std::string> args = {binary, "sweep", file.string(), "--workers", "1"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  pid_t sweep = 0;
  ASSERT_EQ(posix_spawn(&sweep, binary.c_str(), &actions, nullptr, argv.data(), environ), 0);
  posix_spawn_file_actions_destroy(&actions);

  // Kill once one run has finished and the other has a checkpoint but not all 5 epochs.
  auto epochs_in = [&](const std::string& run) {
    const std::string text = read_whole_file(killed / "runs" / run / "metrics.json");
    return static_cast<int>(std::count(text.begin(), text.end(), '{'));
  };
  bool mid_run = false;
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (!mid_run && std::chrono::steady_clock::now() < give_up) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    int finished = 0;
    bool partial = false;
    for (const char* pe : {"nope", "rope"}) {
      const int e = epochs_in(pe);
      finished += e == 5;
      partial |= e >= 1 && e < 5;
    }
    mid_run = finished >= 1 && partial;
  }
  kill(sweep, SIGKILL);
  int status = 0;
  waitpid(sweep, &status, 0);
  ASSERT_TRUE(mid_run) << "never caught the sweep between runs:\n" << read_whole_file(log);
  {
    Store store(killed / "pelab.db", Store::Mode::kExisting);
    EXPECT_GE(store.list_runs({"", "", RunStatus::kFinished}).size(), 1u);
    // Its sweep died: the next open shows it interrupted.
    EXPECT_EQ(store.list_runs({"", "", RunStatus::kInterrupted}).size(), 1u);
  }
  r = run("sweep " + file.string() + " --workers 1");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("1 already finished, 0 to record, 1 to resume"), std::string::npos)
      << r.output;
  // rope (the second run) continued from its checkpoint rather than starting over.
  EXPECT_NE(read_whole_file(killed / "runs" / "rope" / "train.log").find("train --resume"),
            std::string::npos);
  const auto expected = results_of(whole / "pelab.db");
  const auto resumed = results_of(killed / "pelab.db");
  ASSERT_EQ(expected.size(), 2u);
  EXPECT_EQ(resumed, expected);
}
