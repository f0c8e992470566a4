// The experiment store: one SQLite file (runs/pelab.db by default) that holds every result of
// every run: the run's description and status, per-epoch metrics, head-ablation matrices and
// free-form analysis results (spectra, removal curves, ...). The run folder keeps the artefacts
// (checkpoint, config.toml, metrics.json); the store keeps the numbers (DESIGN.md: one source of
// truth per fact). Tables and columns are documented in docs/STORE.md.
//
// Several processes may hold the same store open and write at once: the file is in WAL mode,
// every connection waits up to busy_timeout_ms for a lock, and every write is one IMMEDIATE
// transaction, so a reader never sees half of a write and a kill never leaves one.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "train/checkpoint.h"

namespace SQLite {
class Database;
}

namespace pelab {

// Any store problem (cannot open, unknown schema, bad status, ...): the message names the file.
class StoreError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// kInterrupted: was `running` when the process running it died (a kill -9, a crash, a reboot);
// resumable from its checkpoint like kQueued.
enum class RunStatus { kQueued, kRunning, kFinished, kFailed, kInterrupted };
// "queued", "running", "finished", "failed", "interrupted"
std::string run_status_name(RunStatus status);
// Throws StoreError naming the value and the accepted names.
RunStatus parse_run_status(const std::string& name);

struct RunRecord {
  int64_t id = 0;           // assigned by the store
  std::string name;         // unique in the store; sweeps use "<sweep>/<run>"
  std::string run_dir;      // the run folder (config.toml, checkpoint.pt, metrics.json)
  std::string sweep;        // the sweep that made it; "" for none
  std::string setup;        // free-form group label ("faithful", "standard", ...)
  std::string config_toml;  // the resolved configuration, as to_toml() writes it
  std::string pe, task;     // model.pe and task.name, copied out of the config for queries
  int64_t seed = 0;         // train.seed
  RunStatus status = RunStatus::kQueued;
  // ISO 8601 UTC ("2025-01-31T12:00:00Z"); "" = not yet.
  std::string created_at, started_at, finished_at;
  double train_seconds = 0;  // sum of the epochs' wall times
  int64_t epochs_done = 0;
  std::optional<double> final_train_accuracy, final_test_accuracy;  // of the last epoch
  std::optional<int64_t> exit_code;  // of the worker process, once it ended
  std::string error;                 // why it failed: the tail of the worker's log
  // The process running it (set by mark_running, on this host): lets a later open tell a run
  // whose process died (`interrupted`) from one still running.
  std::optional<int64_t> pid;
  std::string host;
};

struct AblationRecord {
  int64_t id = 0;
  int64_t run_id = 0;
  std::string method;  // value | output | mean (analysis/ablation.h)
  std::string split;   // test | train | all
  double baseline_accuracy = 0;
  int64_t samples = 0;
  std::vector<std::vector<double>> accuracy;  // [layers][heads]: accuracy with that head removed
  nlohmann::json extra = nlohmann::json::object();  // e.g. the per-layer deposit summary
  std::string created_at;
};

// A generic analysis output: `kind` says what it is ("spectrum", "removal", "logits", ...),
// `key` tells results of one kind apart ("layer0/head3", "kernel"), payload holds the numbers.
struct ResultRecord {
  int64_t id = 0;
  std::optional<int64_t> run_id;  // none for results about no single run (e.g. a PE's kernel)
  std::string kind, key;
  nlohmann::json payload;
  std::string created_at;
};

struct RunFilter {
  std::string sweep;                // "" = any
  std::string setup;                // "" = any
  std::optional<RunStatus> status;  // none = any
};

// Every method reports failure (locked for longer than the timeout, disk full, corrupt file) as a
// StoreError naming the file; a failed write leaves the store as it was.
class Store {
 public:
  static constexpr int kSchemaVersion = 2;
  static constexpr int kDefaultBusyTimeoutMs = 30000;
  enum class Mode { kCreate, kExisting };

  // Opens the store, creating the file (and its folder) and the schema with kCreate; kExisting
  // refuses a missing file. Migrates an older schema; refuses a newer one. Marks `interrupted`
  // every run left `running` by a process of this host that no longer exists.
  explicit Store(const std::filesystem::path& path, Mode mode = Mode::kCreate,
                 int busy_timeout_ms = kDefaultBusyTimeoutMs);
  ~Store();
  Store(Store&&) noexcept;
  Store& operator=(Store&&) noexcept;

  const std::filesystem::path& path() const { return path_; }
  int schema_version() const;

  // Runs `body` in one IMMEDIATE transaction: all of its writes land, or none. The write methods
  // below join an enclosing transaction instead of starting their own.
  void transaction(const std::function<void()>& body);

  // Runs: insert or update by name (every field but id; created_at "" means now). Returns the id.
  int64_t upsert_run(const RunRecord& run);
  // Status transitions, each one transaction. Timestamps are set by the store.
  // Records this process (getpid, hostname) as the one running it.
  void mark_running(int64_t run_id);
  void mark_queued(int64_t run_id);  // e.g. a run interrupted by Ctrl-C: resumable
  // Replaces the run's metrics and marks it finished with the last epoch's accuracies.
  void finish_run(int64_t run_id, const std::vector<EpochMetrics>& metrics, int64_t exit_code = 0);
  void fail_run(int64_t run_id, int64_t exit_code, const std::string& error);
  void delete_run(int64_t run_id);  // with its metrics, ablations and results

  // Per-epoch metrics: replaces all rows of the run.
  void replace_metrics(int64_t run_id, const std::vector<EpochMetrics>& metrics);
  // Replaces the record with the same (run, method, split). Returns its id.
  int64_t put_ablation(const AblationRecord& ablation);
  // Replaces the record with the same (run, kind, key). Returns its id.
  int64_t put_result(const ResultRecord& result);

  std::optional<RunRecord> find_run(const std::string& name) const;
  std::optional<RunRecord> get_run(int64_t run_id) const;
  std::vector<RunRecord> list_runs(const RunFilter& filter = {}) const;  // by id
  std::vector<EpochMetrics> metrics(int64_t run_id) const;               // by epoch
  std::vector<AblationRecord> ablations(int64_t run_id) const;
  // Results of one kind; of one run when run_id is given. "" kind = every kind.
  std::vector<ResultRecord> results(const std::string& kind,
                                    std::optional<int64_t> run_id = std::nullopt) const;

  // For ad hoc reads (reports); writes should go through the methods above.
  SQLite::Database& database() const { return *db_; }

 private:
  void create_or_migrate_schema();
  void mark_dead_runs_interrupted();
  void write(const std::function<void()>& body);  // joins or starts a transaction
  std::filesystem::path path_;
  std::unique_ptr<SQLite::Database> db_;
  int transaction_depth_ = 0;
};

}  // namespace pelab
