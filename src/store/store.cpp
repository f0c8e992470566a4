#include "store/store.h"

#include <SQLiteCpp/SQLiteCpp.h>
#include <fmt/format.h>
#include <signal.h>
#include <sqlite3.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <limits>
#include <thread>

#include "store/schema.h"
#include "train/early_stopping.h"

namespace pelab {
namespace fs = std::filesystem;

namespace {

constexpr const char* kNow = "strftime('%Y-%m-%dT%H:%M:%SZ', 'now')";

const char* const kStatusNames[] = {"queued", "running", "finished", "failed", "interrupted"};
constexpr int kStatusCount = 5;

// NaN goes in as NULL (SQLite's own conversion) and comes back as NaN.
double real_or_nan(const SQLite::Column& column) {
  return column.isNull() ? std::numeric_limits<double>::quiet_NaN() : column.getDouble();
}

std::optional<double> optional_real(const SQLite::Column& column) {
  if (column.isNull()) return std::nullopt;
  return column.getDouble();
}

void bind_optional(SQLite::Statement& statement, int index, const std::optional<double>& value) {
  if (value) {
    statement.bind(index, *value);
  } else {
    statement.bind(index);
  }
}

void bind_optional(SQLite::Statement& statement, int index, const std::optional<int64_t>& value) {
  if (value) {
    statement.bind(index, *value);
  } else {
    statement.bind(index);
  }
}

constexpr const char* kRunColumns =
    "id, name, run_dir, sweep, setup, config_toml, pe, task, seed, status, created_at, "
    "started_at, finished_at, train_seconds, epochs_done, final_train_accuracy, "
    "final_test_accuracy, exit_code, error, pid, host";

RunRecord read_run(SQLite::Statement& q) {
  RunRecord r;
  r.id = q.getColumn(0).getInt64();
  r.name = q.getColumn(1).getString();
  r.run_dir = q.getColumn(2).getString();
  r.sweep = q.getColumn(3).getString();
  r.setup = q.getColumn(4).getString();
  r.config_toml = q.getColumn(5).getString();
  r.pe = q.getColumn(6).getString();
  r.task = q.getColumn(7).getString();
  r.seed = q.getColumn(8).getInt64();
  r.status = parse_run_status(q.getColumn(9).getString());
  r.created_at = q.getColumn(10).getString();
  r.started_at = q.getColumn(11).getString();
  r.finished_at = q.getColumn(12).getString();
  r.train_seconds = q.getColumn(13).getDouble();
  r.epochs_done = q.getColumn(14).getInt64();
  r.final_train_accuracy = optional_real(q.getColumn(15));
  r.final_test_accuracy = optional_real(q.getColumn(16));
  if (!q.getColumn(17).isNull()) r.exit_code = q.getColumn(17).getInt64();
  r.error = q.getColumn(18).getString();
  if (!q.getColumn(19).isNull()) r.pid = q.getColumn(19).getInt64();
  r.host = q.getColumn(20).getString();
  return r;
}

// Reads report failures as StoreError too, naming the file.
template <class Body>
auto read_or_throw(const fs::path& path, Body body) {
  try {
    return body();
  } catch (const SQLite::Exception& e) {
    throw StoreError(fmt::format("store '{}': {}", path.string(), e.what()));
  }
}

bool is_busy(const SQLite::Exception& e) {
  return (e.getErrorCode() & 0xff) == SQLITE_BUSY || (e.getErrorCode() & 0xff) == SQLITE_LOCKED;
}

}  // namespace

std::string run_status_name(RunStatus status) { return kStatusNames[static_cast<int>(status)]; }

RunStatus parse_run_status(const std::string& name) {
  for (int i = 0; i < kStatusCount; ++i)
    if (name == kStatusNames[i]) return static_cast<RunStatus>(i);
  throw StoreError(
      fmt::format("run status: bad value '{}'; accepted: queued, running, finished, "
                  "failed, interrupted",
                  name));
}

Store::Store(const fs::path& path, Mode mode, int busy_timeout_ms) : path_(path) {
  if (mode == Mode::kExisting && !fs::exists(path))
    throw StoreError(
        fmt::format("no store at '{}'; a sweep creates one (pelab sweep FILE.toml), "
                    "or name another with --store",
                    path.string()));
  try {
    if (mode == Mode::kCreate && path.has_parent_path()) fs::create_directories(path.parent_path());
    const int flags = SQLite::OPEN_READWRITE | (mode == Mode::kCreate ? SQLite::OPEN_CREATE : 0);
    db_ = std::make_unique<SQLite::Database>(path, flags, busy_timeout_ms);
    // Switching to WAL needs a moment alone with the file; the busy handler does not cover every
    // case (e.g. another process recovering the WAL), so retry for as long as the timeout allows.
    const auto give_up = std::chrono::steady_clock::now() +
                         std::chrono::milliseconds(std::max(busy_timeout_ms, 1000));
    for (;;) {
      try {
        db_->exec("PRAGMA journal_mode = WAL");
        create_or_migrate_schema();
        break;
      } catch (const SQLite::Exception& e) {
        if (!is_busy(e) || std::chrono::steady_clock::now() > give_up) throw;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
    }
    // NORMAL is durable against a killed process (the WAL survives it); only a power cut can
    // lose the last commits, and a sweep re-ingests those from the run folders.
    db_->exec("PRAGMA synchronous = NORMAL");
    db_->exec("PRAGMA foreign_keys = ON");
    mark_dead_runs_interrupted();
  } catch (const StoreError&) {
    throw;
  } catch (const std::exception& e) {
    throw StoreError(
        fmt::format("cannot open the store '{}': {}; accepted: a writable SQLite "
                    "file in a writable folder (--store PATH)",
                    path.string(), e.what()));
  }
}

Store::~Store() = default;
Store::Store(Store&&) noexcept = default;
Store& Store::operator=(Store&&) noexcept = default;

int Store::schema_version() const {
  if (!db_->tableExists("schema_version")) return 0;
  return db_->execAndGet("SELECT version FROM schema_version").getInt();
}

void Store::create_or_migrate_schema() {
  SQLite::Transaction transaction(*db_, SQLite::TransactionBehavior::IMMEDIATE);
  const int version = schema_version();
  if (version > kSchemaVersion)
    throw StoreError(
        fmt::format("the store '{}' has schema version {}, newer than this pelab "
                    "understands ({}); use a newer pelab or another --store",
                    path_.string(), version, kSchemaVersion));
  const auto& steps = store_schema::migrations();
  for (int v = version; v < kSchemaVersion; ++v) {
    db_->exec(steps.at(static_cast<size_t>(v)));
    db_->exec(fmt::format("UPDATE schema_version SET version = {}", v + 1));
  }
  transaction.commit();
}

namespace {

std::string this_host() {
  char name[256] = {};
  if (gethostname(name, sizeof(name) - 1) != 0) return "";
  return name;
}

// kill(pid, 0) succeeds for a live process; EPERM means it exists but is another user's.
bool process_alive(int64_t pid) {
  if (pid <= 0) return false;
  return kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM;
}

}  // namespace

void Store::mark_dead_runs_interrupted() {
  // Only processes of this host can be checked; runs of other hosts keep their status.
  const std::string host = this_host();
  std::vector<int64_t> dead;
  {
    SQLite::Statement q(*db_,
                        "SELECT id, pid FROM runs WHERE status = 'running' AND host = ? AND "
                        "pid IS NOT NULL");
    q.bind(1, host);
    while (q.executeStep())
      if (!process_alive(q.getColumn(1).getInt64())) dead.push_back(q.getColumn(0).getInt64());
  }
  if (dead.empty()) return;
  write([&] {
    for (const int64_t id : dead) {
      // Re-checked inside the transaction: another process may have moved the run on.
      SQLite::Statement q(*db_,
                          "UPDATE runs SET status = 'interrupted' WHERE id = ? AND status = "
                          "'running'");
      q.bind(1, id);
      q.exec();
    }
  });
}

void Store::transaction(const std::function<void()>& body) { write(body); }

void Store::write(const std::function<void()>& body) {
  if (transaction_depth_ > 0) {
    body();
    return;
  }
  try {
    // IMMEDIATE takes the write lock up front: two writers that both began by reading could
    // otherwise deadlock on the upgrade, which no busy timeout resolves.
    SQLite::Transaction transaction(*db_, SQLite::TransactionBehavior::IMMEDIATE);
    ++transaction_depth_;
    try {
      body();
    } catch (...) {
      --transaction_depth_;
      throw;  // the Transaction's destructor rolls back
    }
    --transaction_depth_;
    transaction.commit();
  } catch (const SQLite::Exception& e) {
    throw StoreError(fmt::format("store '{}': {}", path_.string(), e.what()));
  }
}

int64_t Store::upsert_run(const RunRecord& run) {
  parse_run_status(run_status_name(run.status));
  int64_t id = 0;
  write([&] {
    SQLite::Statement q(
        *db_,
        fmt::format("INSERT INTO runs (name, run_dir, sweep, setup, config_toml, pe, task, seed, "
                    "status, created_at, started_at, finished_at, train_seconds, epochs_done, "
                    "final_train_accuracy, final_test_accuracy, exit_code, error) VALUES (?1, ?2, "
                    "?3, ?4, ?5, ?6, ?7, ?8, ?9, IIF(?10 = '', {}, ?10), ?11, ?12, ?13, ?14, ?15, "
                    "?16, ?17, ?18) ON CONFLICT (name) DO UPDATE SET run_dir = ?2, sweep = ?3, "
                    "setup = ?4, config_toml = ?5, pe = ?6, task = ?7, seed = ?8, status = ?9, "
                    "created_at = IIF(?10 = '', created_at, ?10), started_at = ?11, finished_at = "
                    "?12, train_seconds = ?13, epochs_done = ?14, final_train_accuracy = ?15, "
                    "final_test_accuracy = ?16, exit_code = ?17, error = ?18",
                    kNow));
    q.bind(1, run.name);
    q.bind(2, run.run_dir);
    q.bind(3, run.sweep);
    q.bind(4, run.setup);
    q.bind(5, run.config_toml);
    q.bind(6, run.pe);
    q.bind(7, run.task);
    q.bind(8, run.seed);
    q.bind(9, run_status_name(run.status));
    q.bind(10, run.created_at);
    q.bind(11, run.started_at);
    q.bind(12, run.finished_at);
    q.bind(13, run.train_seconds);
    q.bind(14, run.epochs_done);
    bind_optional(q, 15, run.final_train_accuracy);
    bind_optional(q, 16, run.final_test_accuracy);
    bind_optional(q, 17, run.exit_code);
    q.bind(18, run.error);
    q.exec();
    SQLite::Statement get(*db_, "SELECT id FROM runs WHERE name = ?");
    get.bind(1, run.name);
    get.executeStep();
    id = get.getColumn(0).getInt64();
  });
  return id;
}

void Store::mark_running(int64_t run_id) {
  write([&] {
    SQLite::Statement q(*db_, fmt::format("UPDATE runs SET status = 'running', started_at = {}, "
                                          "finished_at = '', exit_code = NULL, error = '', "
                                          "pid = ?2, host = ?3 WHERE id = ?1",
                                          kNow));
    q.bind(1, run_id);
    q.bind(2, static_cast<int64_t>(getpid()));
    q.bind(3, this_host());
    q.exec();
  });
}

void Store::mark_queued(int64_t run_id) {
  write([&] {
    SQLite::Statement q(*db_, "UPDATE runs SET status = 'queued' WHERE id = ?");
    q.bind(1, run_id);
    q.exec();
  });
}

void Store::finish_run(int64_t run_id, const std::vector<EpochMetrics>& metrics,
                       int64_t exit_code) {
  write([&] {
    replace_metrics(run_id, metrics);
    double seconds = 0;
    for (const auto& m : metrics) seconds += m.seconds;
    SQLite::Statement q(*db_, fmt::format("UPDATE runs SET status = 'finished', finished_at = {}, "
                                          "train_seconds = ?2, epochs_done = ?3, "
                                          "final_train_accuracy = ?4, final_test_accuracy = ?5, "
                                          "exit_code = ?6, error = '' WHERE id = ?1",
                                          kNow));
    q.bind(1, run_id);
    q.bind(2, seconds);
    q.bind(3, static_cast<int64_t>(metrics.size()));
    if (metrics.empty()) {
      q.bind(4);
      q.bind(5);
    } else {
      // The reported model's epoch: the best validation epoch, else the last (early_stopping.h).
      const EpochMetrics& reported = reported_epoch(metrics);
      q.bind(4, reported.train_accuracy);
      q.bind(5, reported.test_accuracy);
    }
    q.bind(6, exit_code);
    q.exec();
  });
}

void Store::fail_run(int64_t run_id, int64_t exit_code, const std::string& error) {
  write([&] {
    SQLite::Statement q(*db_, fmt::format("UPDATE runs SET status = 'failed', finished_at = {}, "
                                          "exit_code = ?2, error = ?3 WHERE id = ?1",
                                          kNow));
    q.bind(1, run_id);
    q.bind(2, exit_code);
    q.bind(3, error);
    q.exec();
  });
}

void Store::delete_run(int64_t run_id) {
  write([&] {
    SQLite::Statement q(*db_, "DELETE FROM runs WHERE id = ?");
    q.bind(1, run_id);
    q.exec();
  });
}

void Store::replace_metrics(int64_t run_id, const std::vector<EpochMetrics>& metrics) {
  write([&] {
    SQLite::Statement clear(*db_, "DELETE FROM epoch_metrics WHERE run_id = ?");
    clear.bind(1, run_id);
    clear.exec();
    SQLite::Statement insert(*db_,
                             "INSERT INTO epoch_metrics (run_id, epoch, train_loss, "
                             "train_accuracy, test_loss, test_accuracy, lr, seconds, "
                             "train_samples_per_s) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)");
    for (const auto& m : metrics) {
      insert.reset();
      insert.bind(1, run_id);
      insert.bind(2, m.epoch);
      insert.bind(3, m.train_loss);
      insert.bind(4, m.train_accuracy);
      insert.bind(5, m.test_loss);
      insert.bind(6, m.test_accuracy);
      insert.bind(7, m.lr);
      insert.bind(8, m.seconds);
      insert.bind(9, m.train_samples_per_s);
      insert.exec();
    }
  });
}

int64_t Store::put_ablation(const AblationRecord& a) {
  const int64_t layers = static_cast<int64_t>(a.accuracy.size());
  const int64_t heads = layers ? static_cast<int64_t>(a.accuracy[0].size()) : 0;
  for (const auto& row : a.accuracy)
    if (static_cast<int64_t>(row.size()) != heads)
      throw StoreError(
          fmt::format("ablation of run {}: the accuracy matrix is ragged (rows of {} "
                      "and {} heads); accepted: [layers][heads]",
                      a.run_id, heads, row.size()));
  int64_t id = 0;
  write([&] {
    SQLite::Statement q(*db_, fmt::format("INSERT INTO ablations (run_id, method, split, "
                                          "baseline_accuracy, samples, layers, heads, "
                                          "accuracy_json, extra_json, created_at) VALUES (?1, "
                                          "?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, IIF(?10 = '', {}, "
                                          "?10)) ON CONFLICT (run_id, method, split) DO UPDATE "
                                          "SET baseline_accuracy = ?4, samples = ?5, layers = "
                                          "?6, heads = ?7, accuracy_json = ?8, extra_json = ?9, "
                                          "created_at = IIF(?10 = '', {}, ?10) RETURNING id",
                                          kNow, kNow));
    q.bind(1, a.run_id);
    q.bind(2, a.method);
    q.bind(3, a.split);
    q.bind(4, a.baseline_accuracy);
    q.bind(5, a.samples);
    q.bind(6, layers);
    q.bind(7, heads);
    q.bind(8, nlohmann::json(a.accuracy).dump());
    q.bind(9, a.extra.dump());
    q.bind(10, a.created_at);
    q.executeStep();
    id = q.getColumn(0).getInt64();
  });
  return id;
}

int64_t Store::put_result(const ResultRecord& r) {
  int64_t id = 0;
  write([&] {
    SQLite::Statement clear(*db_, "DELETE FROM results WHERE run_id IS ? AND kind = ? AND key = ?");
    bind_optional(clear, 1, r.run_id);
    clear.bind(2, r.kind);
    clear.bind(3, r.key);
    clear.exec();
    SQLite::Statement q(*db_, fmt::format("INSERT INTO results (run_id, kind, key, payload_json, "
                                          "created_at) VALUES (?, ?, ?, ?, IIF(?5 = '', {}, ?5)) "
                                          "RETURNING id",
                                          kNow));
    bind_optional(q, 1, r.run_id);
    q.bind(2, r.kind);
    q.bind(3, r.key);
    q.bind(4, r.payload.dump());
    q.bind(5, r.created_at);
    q.executeStep();
    id = q.getColumn(0).getInt64();
  });
  return id;
}

std::optional<RunRecord> Store::find_run(const std::string& name) const {
  return read_or_throw(path_, [&] {
    SQLite::Statement q(*db_, fmt::format("SELECT {} FROM runs WHERE name = ?", kRunColumns));
    q.bind(1, name);
    if (!q.executeStep()) return std::optional<RunRecord>();
    return std::optional<RunRecord>(read_run(q));
  });
}

std::optional<RunRecord> Store::get_run(int64_t run_id) const {
  return read_or_throw(path_, [&] {
    SQLite::Statement q(*db_, fmt::format("SELECT {} FROM runs WHERE id = ?", kRunColumns));
    q.bind(1, run_id);
    if (!q.executeStep()) return std::optional<RunRecord>();
    return std::optional<RunRecord>(read_run(q));
  });
}

std::vector<RunRecord> Store::list_runs(const RunFilter& filter) const {
  return read_or_throw(path_, [&] {
    SQLite::Statement q(*db_, fmt::format("SELECT {} FROM runs WHERE (?1 = '' OR sweep = ?1) AND "
                                          "(?2 = '' OR setup = ?2) AND (?3 = '' OR status = ?3) "
                                          "ORDER BY id",
                                          kRunColumns));
    q.bind(1, filter.sweep);
    q.bind(2, filter.setup);
    q.bind(3, filter.status ? run_status_name(*filter.status) : std::string());
    std::vector<RunRecord> out;
    while (q.executeStep()) out.push_back(read_run(q));
    return out;
  });
}

std::vector<EpochMetrics> Store::metrics(int64_t run_id) const {
  return read_or_throw(path_, [&] {
    SQLite::Statement q(*db_,
                        "SELECT epoch, train_loss, train_accuracy, test_loss, test_accuracy, lr, "
                        "seconds, train_samples_per_s FROM epoch_metrics WHERE run_id = ? ORDER BY "
                        "epoch");
    q.bind(1, run_id);
    std::vector<EpochMetrics> out;
    while (q.executeStep()) {
      EpochMetrics m;
      m.epoch = q.getColumn(0).getInt64();
      m.train_loss = real_or_nan(q.getColumn(1));
      m.train_accuracy = real_or_nan(q.getColumn(2));
      m.test_loss = real_or_nan(q.getColumn(3));
      m.test_accuracy = real_or_nan(q.getColumn(4));
      m.lr = real_or_nan(q.getColumn(5));
      m.seconds = real_or_nan(q.getColumn(6));
      m.train_samples_per_s = real_or_nan(q.getColumn(7));
      out.push_back(m);
    }
    return out;
  });
}

std::vector<AblationRecord> Store::ablations(int64_t run_id) const {
  return read_or_throw(path_, [&] {
    SQLite::Statement q(*db_,
                        "SELECT id, run_id, method, split, baseline_accuracy, samples, "
                        "accuracy_json, extra_json, created_at FROM ablations WHERE run_id = ? "
                        "ORDER BY method, split");
    q.bind(1, run_id);
    std::vector<AblationRecord> out;
    while (q.executeStep()) {
      AblationRecord a;
      a.id = q.getColumn(0).getInt64();
      a.run_id = q.getColumn(1).getInt64();
      a.method = q.getColumn(2).getString();
      a.split = q.getColumn(3).getString();
      a.baseline_accuracy = q.getColumn(4).getDouble();
      a.samples = q.getColumn(5).getInt64();
      a.accuracy =
          nlohmann::json::parse(q.getColumn(6).getString()).get<std::vector<std::vector<double>>>();
      a.extra = nlohmann::json::parse(q.getColumn(7).getString());
      a.created_at = q.getColumn(8).getString();
      out.push_back(std::move(a));
    }
    return out;
  });
}

std::vector<ResultRecord> Store::results(const std::string& kind,
                                         std::optional<int64_t> run_id) const {
  return read_or_throw(path_, [&] {
    SQLite::Statement q(*db_,
                        "SELECT id, run_id, kind, key, payload_json, created_at FROM results WHERE "
                        "(?1 = '' OR kind = ?1) AND (?2 IS NULL OR run_id = ?2) ORDER BY kind, "
                        "run_id, key");
    q.bind(1, kind);
    bind_optional(q, 2, run_id);
    std::vector<ResultRecord> out;
    while (q.executeStep()) {
      ResultRecord r;
      r.id = q.getColumn(0).getInt64();
      if (!q.getColumn(1).isNull()) r.run_id = q.getColumn(1).getInt64();
      r.kind = q.getColumn(2).getString();
      r.key = q.getColumn(3).getString();
      r.payload = nlohmann::json::parse(q.getColumn(4).getString());
      r.created_at = q.getColumn(5).getString();
      out.push_back(std::move(r));
    }
    return out;
  });
}

}  // namespace pelab
