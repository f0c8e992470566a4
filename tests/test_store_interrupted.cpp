// Runs left `running` by a process that died show as `interrupted` on the next open; the
// schema migration that added pid, host and that status keeps every older row.
#include <SQLiteCpp/SQLiteCpp.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>

#include "store/schema.h"
#include "store/store.h"
#include "test_files.h"

namespace fs = std::filesystem;
using namespace pelab;

using pelab::test_files::fresh_test_dir;

namespace {

fs::path fresh_interrupted_store(const std::string& name) {
  return fresh_test_dir("store_interrupted_" + name, false) / "pelab.db";
}

RunRecord queued(const std::string& name) {
  RunRecord r;
  r.name = name;
  r.run_dir = "/tmp/runs/" + name;
  r.config_toml = "[model]\n";
  r.pe = "rope";
  r.task = "distance";
  return r;
}

}  // namespace

TEST(StoreInterrupted, ARunWhoseProcessDiedIsInterruptedAndALiveOneStaysRunning) {
  const fs::path path = fresh_interrupted_store("died");
  int ready[2];
  ASSERT_EQ(pipe(ready), 0);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // The "sweep": marks its run running, says so, and waits to be killed.
    try {
      Store store(path);
      store.mark_running(store.upsert_run(queued("killed")));
    } catch (...) {
      _exit(1);
    }
    (void)!write(ready[1], "x", 1);
    for (;;) pause();
  }
  close(ready[1]);
  char byte = 0;
  ASSERT_EQ(read(ready[0], &byte, 1), 1);
  close(ready[0]);
  {
    Store store(path);  // the child is alive: nothing changes
    const auto r = store.find_run("killed");
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->status, RunStatus::kRunning);
    EXPECT_EQ(r->pid, static_cast<int64_t>(child));
    char host[256] = {};
    gethostname(host, sizeof(host) - 1);
    EXPECT_EQ(r->host, std::string(host));
    store.mark_running(store.upsert_run(queued("alive")));  // this process: alive
  }
  kill(child, SIGKILL);
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  Store store(path);
  EXPECT_EQ(store.find_run("killed")->status, RunStatus::kInterrupted);
  EXPECT_EQ(store.find_run("alive")->status, RunStatus::kRunning);
  const auto interrupted = store.list_runs({"", "", RunStatus::kInterrupted});
  ASSERT_EQ(interrupted.size(), 1u);
  EXPECT_EQ(interrupted[0].name, "killed");
  EXPECT_EQ(parse_run_status("interrupted"), RunStatus::kInterrupted);
  EXPECT_EQ(run_status_name(RunStatus::kInterrupted), "interrupted");
}

// A runs row of another host is never judged from here.
TEST(StoreInterrupted, RunsOfAnotherHostKeepTheirStatus) {
  const fs::path path = fresh_interrupted_store("other_host");
  {
    Store store(path);
    const int64_t id = store.upsert_run(queued("elsewhere"));
    store.mark_running(id);
    store.database().exec(
        "UPDATE runs SET host = 'some-other-node', pid = 999999999 WHERE name = 'elsewhere'");
  }
  Store store(path);
  EXPECT_EQ(store.find_run("elsewhere")->status, RunStatus::kRunning);
}

// A schema-1 store (before pid, host and `interrupted`) opens as schema 2 with its rows, and the
// child tables still refer to the rebuilt runs table (deleting a run cascades).
TEST(StoreInterrupted, SchemaOneStoresMigrateWithTheirRows) {
  const fs::path path = fresh_interrupted_store("migrate");
  fs::create_directories(path.parent_path());
  {
    SQLite::Database db(path, SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
    db.exec(store_schema::migrations().at(0));
    db.exec("UPDATE schema_version SET version = 1");
    db.exec(
        "INSERT INTO runs (id, name, run_dir, config_toml, pe, task, seed, status, created_at) "
        "VALUES (5, 'old', '/r', '', 'rope', 'count', 3, 'running', '2025-01-01T00:00:00Z')");
    db.exec("INSERT INTO epoch_metrics (run_id, epoch, train_loss) VALUES (5, 1, 0.5)");
  }
  Store store(path);
  EXPECT_EQ(store.schema_version(), 2);
  const auto r = store.get_run(5);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->name, "old");
  EXPECT_EQ(r->seed, 3);
  EXPECT_EQ(r->status, RunStatus::kRunning);  // no pid recorded: left alone
  EXPECT_FALSE(r->pid.has_value());
  ASSERT_EQ(store.metrics(5).size(), 1u);
  EXPECT_EQ(store.metrics(5)[0].train_loss, 0.5);
  store.delete_run(5);
  EXPECT_EQ(store.database().execAndGet("SELECT COUNT(*) FROM epoch_metrics").getInt(), 0);
}
