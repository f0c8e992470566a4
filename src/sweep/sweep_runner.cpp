#include "sweep/sweep_runner.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <sched.h>
#include <signal.h>
#include <sys/file.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include "sweep/run_folder.h"
#include "sweep/worker.h"
#include "train/checkpoint.h"
#include "train/interrupt.h"

namespace pelab {
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

volatile sig_atomic_t g_interrupted = 0;
void on_interrupt(int) { g_interrupted = 1; }

// SIGINT / SIGTERM set a flag the sweep loop reads; the previous handlers come back afterwards.
class InterruptGuard {
 public:
  InterruptGuard() {
    g_interrupted = 0;
    struct sigaction action {};
    action.sa_handler = on_interrupt;
    sigemptyset(&action.sa_mask);
    sigaction(SIGINT, &action, &old_int_);
    sigaction(SIGTERM, &action, &old_term_);
  }
  ~InterruptGuard() {
    sigaction(SIGINT, &old_int_, nullptr);
    sigaction(SIGTERM, &old_term_, nullptr);
  }

 private:
  struct sigaction old_int_ {
  }, old_term_{};
};

// An exclusive flock on <out_dir>/.sweep.lock. The descriptor is deliberately inherited by the
// workers, so the lock lasts until the last of them is gone even if this process is killed.
class SweepLock {
 public:
  explicit SweepLock(const fs::path& out_dir) {
    fs::create_directories(out_dir);
    const fs::path file = out_dir / ".sweep.lock";
    fd_ = open(file.c_str(), O_RDWR | O_CREAT, 0644);
    if (fd_ < 0)
      throw StoreError(fmt::format("cannot create the sweep lock '{}': {}", file.string(),
                                   std::strerror(errno)));
    // Workers of a killed sweep die with it, a moment later: wait a little for them.
    const auto give_up = Clock::now() + std::chrono::seconds(10);
    while (flock(fd_, LOCK_EX | LOCK_NB) != 0) {
      if (Clock::now() > give_up) {
        close(fd_);
        throw StoreError(
            fmt::format("another sweep is running in '{}' (it holds '{}'); wait for "
                        "it or stop it before re-running",
                        out_dir.string(), file.string()));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  ~SweepLock() { close(fd_); }
  SweepLock(const SweepLock&) = delete;
  SweepLock& operator=(const SweepLock&) = delete;

 private:
  int fd_ = -1;
};

std::string format_duration(double seconds) {
  const auto s = static_cast<int64_t>(seconds + 0.5);
  return fmt::format("{}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60);
}

enum class Action { kSkip, kIngest, kResume, kStart };

struct PlannedRun {
  const SweepRun* run = nullptr;
  Action action = Action::kStart;
  int64_t id = 0;
  int64_t threads = 0;         // train.threads the worker will use
  bool extend_epochs = false;  // resume with train.epochs = the sweep's
};

PlannedRun plan(const SweepSpec& spec, const SweepRun& run, const Store& store) {
  PlannedRun p;
  p.run = &run;
  const RunFolder folder = inspect_run_folder(spec, run);
  p.threads = folder.threads;
  p.extend_epochs = folder.extend_epochs;
  const auto record = store.find_run(run.store_name);
  if (folder.complete(run)) {
    p.action = record && record->status == RunStatus::kFinished &&
                       record->epochs_done == static_cast<int64_t>(folder.done.size())
                   ? Action::kSkip
                   : Action::kIngest;
  } else {
    p.action = folder.has_checkpoint ? Action::kResume : Action::kStart;
  }
  if (record) p.id = record->id;
  return p;
}

RunRecord queued_record(const SweepSpec& spec, const SweepRun& run, const Store& store) {
  RunRecord r;
  if (auto old = store.find_run(run.store_name)) r.created_at = old->created_at;
  r.name = run.store_name;
  r.run_dir = fs::absolute(run.run_dir).lexically_normal().string();
  r.sweep = spec.name;
  r.setup = spec.setup;
  r.config_toml = to_toml(run.config);
  r.pe = run.config.model.pe;
  r.task = run.config.task.name;
  r.seed = run.config.train.seed;
  r.status = RunStatus::kQueued;
  return r;
}

// Puts a run whose folder is complete into the store: metrics and "finished" in one
// transaction. metrics.json trails the checkpoint by a moment, so a kill between the two writes
// of the last epoch leaves it one short; the checkpoint's own history is then the record.
bool ingest(Store& store, const PlannedRun& p, int64_t exit_code, std::string& why_not) {
  const SweepRun& run = *p.run;
  const int64_t epochs = run.config.train.epochs;
  auto metrics = folder_metrics(run.run_dir);
  if (!training_finished(metrics, run.config.train) && fs::exists(checkpoint_path(run.run_dir))) {
    try {
      metrics = load_checkpoint(checkpoint_path(run.run_dir)).history;
    } catch (const std::exception& e) {
      why_not = e.what();
    }
  }
  if (!training_finished(metrics, run.config.train)) {
    why_not =
        fmt::format("the run folder holds {} of {} epochs {}", metrics.size(), epochs, why_not);
    return false;
  }
  store.finish_run(p.id, metrics, exit_code);
  return true;
}

}  // namespace

int64_t available_cores() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) return std::max(1, CPU_COUNT(&set));
  return std::max(1u, std::thread::hardware_concurrency());
}

int64_t threads_per_worker(int64_t workers) {
  return std::max<int64_t>(1, available_cores() / std::max<int64_t>(1, workers));
}

SweepSummary run_sweep(const SweepSpec& spec, const std::vector<SweepRun>& runs, Store& store,
                       const SweepOptions& options) {
  const auto start = Clock::now();
  SweepLock lock(spec.out_dir);
  SweepSummary summary;
  summary.total = static_cast<int64_t>(runs.size());

  // Decide every run's fate before touching anything: a conflict stops the sweep unstarted.
  std::vector<PlannedRun> planned;
  for (const auto& run : runs) planned.push_back(plan(spec, run, store));
  store.transaction([&] {
    for (auto& p : planned)
      if (p.action != Action::kSkip) p.id = store.upsert_run(queued_record(spec, *p.run, store));
  });

  int64_t counts[4] = {0, 0, 0, 0};
  for (const auto& p : planned) ++counts[static_cast<int>(p.action)];
  summary.skipped = counts[static_cast<int>(Action::kSkip)];
  const int64_t workers = std::max<int64_t>(1, options.workers);
  if (options.progress)
    fmt::print(stderr,
               "sweep {}: {} runs: {} already finished, {} to record, {} to resume, {} to start; "
               "{} workers; store {}\n",
               spec.name, summary.total, counts[0], counts[1], counts[2], counts[3], workers,
               store.path().string());

  int64_t failed_here = 0, done_here = 0;
  const int64_t to_do = summary.total - summary.skipped;
  auto report = [&](const PlannedRun& p, const std::string& what) {
    ++done_here;
    if (!options.progress) return;
    const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
    const double eta = elapsed / double(done_here) * double(to_do - done_here);
    fmt::print(stderr, "[{}/{} done, {} failed, ETA {}] {} {}\n", summary.skipped + done_here,
               summary.total, failed_here, format_duration(eta), p.run->name, what);
  };
  auto record_success = [&](const PlannedRun& p, int64_t exit_code) {
    std::string why_not;
    if (ingest(store, p, exit_code, why_not)) {
      ++summary.finished;
      const auto r = store.get_run(p.id);
      report(p, fmt::format("finished: test_acc {:.4f}, {:.1f} s of training",
                            r->final_test_accuracy.value_or(0.0), r->train_seconds));
      return;
    }
    ++summary.failed;
    ++failed_here;
    store.fail_run(p.id, exit_code, why_not);
    report(p, "FAILED: " + why_not);
  };

  std::vector<const PlannedRun*> queue;
  for (const auto& p : planned) {
    if (p.action == Action::kIngest) record_success(p, 0);
    if (p.action == Action::kResume || p.action == Action::kStart) queue.push_back(&p);
  }

  InterruptGuard interrupt_guard;
  const std::string binary = options.binary.empty() ? "/proc/self/exe" : options.binary.string();
  const char* wait_policy = std::getenv("OMP_WAIT_POLICY");
  std::map<pid_t, const PlannedRun*> active;
  size_t next = 0;
  auto start_next = [&] {
    const PlannedRun& p = *queue[next++];
    const SweepRun& run = *p.run;
    fs::create_directories(run.run_dir);
    WorkerCommand command;
    if (p.action == Action::kStart) {
      const fs::path config_file = run.run_dir / "config.toml";
      write_file_atomically(config_file, to_toml(run.config));
      command.argv = {
          binary,         "train", "--config", config_file.string(), "--out", run.run_dir.string(),
          "--no-progress"};
    } else {
      command.argv = {binary, "train", "--resume", run.run_dir.string(), "--no-progress"};
      if (p.extend_epochs)
        command.argv.push_back(fmt::format("train.epochs={}", run.config.train.epochs));
    }
    // Idle OpenMP threads must sleep, not spin: spinning workers steal each other's cores.
    command.env.emplace_back("OMP_WAIT_POLICY", wait_policy ? wait_policy : "passive");
    if (p.threads > 0) command.env.emplace_back("OMP_NUM_THREADS", std::to_string(p.threads));
    command.log_file = run.run_dir / "train.log";
    {
      std::ofstream log(command.log_file, std::ios::app);
      log << "== pelab sweep " << spec.name << ": "
          << fmt::format("{}", fmt::join(command.argv, " ")) << "\n";
    }
    store.mark_running(p.id);
    active[start_worker(command)] = &p;
    if (options.progress)
      fmt::print(stderr, "  {} {} ({} thread{})\n",
                 p.action == Action::kStart ? "start " : "resume", run.name, p.threads,
                 p.threads == 1 ? "" : "s");
  };

  while ((next < queue.size() || !active.empty()) && !g_interrupted) {
    while (!g_interrupted && next < queue.size() && static_cast<int64_t>(active.size()) < workers)
      start_next();
    for (auto it = active.begin(); it != active.end();) {
      const auto exit = poll_worker(it->first);
      if (!exit) {
        ++it;
        continue;
      }
      const PlannedRun& p = *it->second;
      it = active.erase(it);
      const bool stopped_by_user = exit->exit_code == kExitInterrupted ||
                                   exit->exit_code == 128 + SIGINT ||
                                   exit->exit_code == 128 + SIGTERM;
      if (exit->exit_code == 0) {
        record_success(p, 0);
      } else if (stopped_by_user) {
        g_interrupted = 1;  // Ctrl-C reaches the workers too, sometimes before us
        store.mark_queued(p.id);
      } else {
        ++summary.failed;
        ++failed_here;
        const fs::path log = p.run->run_dir / "train.log";
        store.fail_run(p.id, exit->exit_code,
                       fmt::format("worker {}; the end of {}:\n{}", exit->description, log.string(),
                                   file_tail(log, 2000)));
        report(p, fmt::format("FAILED ({}); see {}", exit->description, log.string()));
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }

  summary.remaining = to_do - summary.finished - summary.failed;
  if (g_interrupted) {
    summary.interrupted = true;
    for (const auto& [pid, p] : active) signal_worker(pid, SIGTERM);
    for (const auto& [pid, p] : active) {
      wait_worker(pid);
      store.mark_queued(p->id);
    }
    for (size_t i = next; i < queue.size(); ++i) store.mark_queued(queue[i]->id);
    if (options.progress)
      fmt::print(stderr,
                 "sweep {}: interrupted; {} runs left to do, their checkpoints kept: re-run the "
                 "same command to continue\n",
                 spec.name, summary.remaining);
  }
  summary.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return summary;
}

SweepSummary collect_sweep(const SweepSpec& spec, const std::vector<SweepRun>& runs, Store& store,
                           bool progress) {
  const auto start = Clock::now();
  SweepSummary summary;
  summary.total = static_cast<int64_t>(runs.size());
  std::vector<PlannedRun> planned;
  for (const auto& run : runs) planned.push_back(plan(spec, run, store));
  store.transaction([&] {
    for (auto& p : planned) {
      if (p.action == Action::kSkip) {
        ++summary.skipped;
        continue;
      }
      p.id = store.upsert_run(queued_record(spec, *p.run, store));
      std::string why_not;
      if (p.action == Action::kIngest && ingest(store, p, 0, why_not)) {
        ++summary.finished;
        continue;
      }
      if (p.action == Action::kIngest) {
        ++summary.failed;
        store.fail_run(p.id, 1, why_not);
        continue;
      }
      ++summary.remaining;
      const RunFolder folder = inspect_run_folder(spec, *p.run);
      if (folder.has_checkpoint || folder.has_config) {
        RunRecord r = queued_record(spec, *p.run, store);
        r.status = RunStatus::kInterrupted;
        r.epochs_done = static_cast<int64_t>(folder.done.size());
        store.upsert_run(r);
      }
    }
  });
  if (progress)
    fmt::print(stderr,
               "sweep {}: collected {} runs: {} finished now, {} already in the store, {} "
               "unfinished, {} with incomplete folders\n",
               spec.name, summary.total, summary.finished, summary.skipped, summary.remaining,
               summary.failed);
  summary.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return summary;
}

}  // namespace pelab
