// The experiment store: every record round-trips, writes are all-or-nothing, and concurrent
// writer processes lose nothing.
#include <SQLiteCpp/SQLiteCpp.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>

#include "store/store.h"
#include "test_files.h"

namespace fs = std::filesystem;
using namespace pelab;

using pelab::test_files::fresh_test_dir;

namespace {

fs::path fresh_store(const std::string& name) {
  return fresh_test_dir("store_" + name, false) / "sub" / "pelab.db";  // the store creates it
}

RunRecord sample_run(const std::string& name) {
  RunRecord r;
  r.name = name;
  r.run_dir = "/tmp/runs/" + name;
  r.sweep = "grid";
  r.setup = "faithful";
  r.config_toml = "[model]\npe = \"rope\"\n# \"quoted\", commas, ünïcode\n";
  r.pe = "rope";
  r.task = "count";
  r.seed = 7;
  r.status = RunStatus::kFailed;
  r.created_at = "2025-01-02T03:04:05Z";
  r.started_at = "2025-01-02T03:04:06Z";
  r.finished_at = "2025-01-02T03:05:06Z";
  r.train_seconds = 60.25;
  r.epochs_done = 3;
  r.final_train_accuracy = 0.875;
  r.final_test_accuracy = 1.0 / 3.0;
  r.exit_code = 3;
  r.error = "checkpoint error: 'x' is corrupt\nline two";
  return r;
}

void expect_same_run(const RunRecord& a, const RunRecord& b) {
  EXPECT_EQ(a.name, b.name);
  EXPECT_EQ(a.run_dir, b.run_dir);
  EXPECT_EQ(a.sweep, b.sweep);
  EXPECT_EQ(a.setup, b.setup);
  EXPECT_EQ(a.config_toml, b.config_toml);
  EXPECT_EQ(a.pe, b.pe);
  EXPECT_EQ(a.task, b.task);
  EXPECT_EQ(a.seed, b.seed);
  EXPECT_EQ(a.status, b.status);
  EXPECT_EQ(a.created_at, b.created_at);
  EXPECT_EQ(a.started_at, b.started_at);
  EXPECT_EQ(a.finished_at, b.finished_at);
  EXPECT_EQ(a.train_seconds, b.train_seconds);
  EXPECT_EQ(a.epochs_done, b.epochs_done);
  EXPECT_EQ(a.final_train_accuracy, b.final_train_accuracy);
  EXPECT_EQ(a.final_test_accuracy, b.final_test_accuracy);
  EXPECT_EQ(a.exit_code, b.exit_code);
  EXPECT_EQ(a.error, b.error);
}

std::vector<EpochMetrics> sample_metrics(int64_t epochs, double offset) {
  std::vector<EpochMetrics> out;
  for (int64_t e = 1; e <= epochs; ++e) {
    EpochMetrics m;
    m.epoch = e;
    m.train_loss = 2.0 / double(e) + offset;
    m.train_accuracy = 0.1 * double(e);
    m.test_loss = 1.0 / 7.0 * double(e);
    m.test_accuracy = 0.3 + offset;
    m.lr = 1e-3 / double(e);
    m.seconds = 0.5;
    m.train_samples_per_s = 1234.5678;
    out.push_back(m);
  }
  return out;
}

bool same_double(double a, double b) { return (std::isnan(a) && std::isnan(b)) || a == b; }

int64_t count_rows(const Store& store, const std::string& table) {
  return store.database().execAndGet("SELECT COUNT(*) FROM " + table).getInt64();
}

}  // namespace

TEST(Store, RoundTripsEveryRecord) {
  const fs::path path = fresh_store("roundtrip");
  int64_t run_id = 0;
  RunRecord original = sample_run("grid/rope-count-s7");
  {
    Store store(path);
    EXPECT_EQ(store.schema_version(), Store::kSchemaVersion);
    run_id = store.upsert_run(original);
    EXPECT_GT(run_id, 0);
    auto metrics = sample_metrics(3, 0.0);
    metrics[1].train_loss = std::numeric_limits<double>::quiet_NaN();  // a diverged epoch
    store.replace_metrics(run_id, metrics);

    AblationRecord a;
    a.run_id = run_id;
    a.method = "value";
    a.split = "test";
    a.baseline_accuracy = 0.9;
    a.samples = 154;
    a.accuracy = {{0.1, 0.2, 0.3, 1.0 / 3.0}, {0.5, 0.6, 0.7, 0.8}};
    a.extra = {{"deposits", {{{"layer", 0}, {"worst_head", 2}}}}};
    a.created_at = "2025-02-03T00:00:00Z";
    a.id = store.put_ablation(a);

    ResultRecord per_run{0, run_id, "spectrum", "layer0/head1", {{"eigenvalues", {1.5, -2.25}}},
                         ""};
    ResultRecord global{0, std::nullopt, "kernel", "alibi/n=8", {{"schur", true}}, ""};
    store.put_result(per_run);
    store.put_result(global);
  }
  // A new connection reads what the first one wrote.
  Store store(path, Store::Mode::kExisting);
  original.id = run_id;
  auto by_name = store.find_run(original.name);
  ASSERT_TRUE(by_name);
  EXPECT_EQ(by_name->id, run_id);
  expect_same_run(*by_name, original);
  expect_same_run(*store.get_run(run_id), original);
  EXPECT_FALSE(store.find_run("nope"));
  EXPECT_FALSE(store.get_run(run_id + 100));

  auto expected_metrics = sample_metrics(3, 0.0);
  expected_metrics[1].train_loss = std::numeric_limits<double>::quiet_NaN();
  const auto metrics = store.metrics(run_id);
  ASSERT_EQ(metrics.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    const auto &m = metrics[i], &e = expected_metrics[i];
    EXPECT_EQ(m.epoch, e.epoch);
    EXPECT_TRUE(same_double(m.train_loss, e.train_loss)) << i;
    EXPECT_EQ(m.train_accuracy, e.train_accuracy);
    EXPECT_EQ(m.test_loss, e.test_loss);
    EXPECT_EQ(m.test_accuracy, e.test_accuracy);
    EXPECT_EQ(m.lr, e.lr);
    EXPECT_EQ(m.seconds, e.seconds);
    EXPECT_EQ(m.train_samples_per_s, e.train_samples_per_s);
  }

  const auto ablations = store.ablations(run_id);
  ASSERT_EQ(ablations.size(), 1u);
  EXPECT_EQ(ablations[0].method, "value");
  EXPECT_EQ(ablations[0].split, "test");
  EXPECT_EQ(ablations[0].baseline_accuracy, 0.9);
  EXPECT_EQ(ablations[0].samples, 154);
  EXPECT_EQ(ablations[0].accuracy,
            (std::vector<std::vector<double>>{{0.1, 0.2, 0.3, 1.0 / 3.0}, {0.5, 0.6, 0.7, 0.8}}));
  EXPECT_EQ(ablations[0].extra["deposits"][0]["worst_head"], 2);
  EXPECT_EQ(ablations[0].created_at, "2025-02-03T00:00:00Z");

  const auto spectra = store.results("spectrum", run_id);
  ASSERT_EQ(spectra.size(), 1u);
  EXPECT_EQ(spectra[0].run_id, run_id);
  EXPECT_EQ(spectra[0].key, "layer0/head1");
  EXPECT_EQ(spectra[0].payload["eigenvalues"][1], -2.25);
  EXPECT_FALSE(spectra[0].created_at.empty());  // "" means now
  const auto kernels = store.results("kernel");
  ASSERT_EQ(kernels.size(), 1u);
  EXPECT_FALSE(kernels[0].run_id);
  EXPECT_EQ(kernels[0].payload["schur"], true);
  EXPECT_EQ(store.results("").size(), 2u);
  EXPECT_TRUE(store.results("logits").empty());
}

TEST(Store, WritesReplaceAndTransitionsUpdate) {
  Store store(fresh_store("replace"));
  RunRecord r = sample_run("a");
  r.created_at = "";
  r.status = RunStatus::kQueued;
  r.final_test_accuracy.reset();
  r.exit_code.reset();
  const int64_t id = store.upsert_run(r);
  const std::string created = store.get_run(id)->created_at;
  EXPECT_EQ(created.size(), 20u) << created;  // 2025-01-02T03:04:05Z
  r.setup = "standard";
  EXPECT_EQ(store.upsert_run(r), id);  // same name: same row, created_at kept
  EXPECT_EQ(store.get_run(id)->setup, "standard");
  EXPECT_EQ(store.get_run(id)->created_at, created);
  EXPECT_FALSE(store.get_run(id)->final_test_accuracy);

  store.mark_running(id);
  EXPECT_EQ(store.get_run(id)->status, RunStatus::kRunning);
  EXPECT_FALSE(store.get_run(id)->exit_code);
  store.replace_metrics(id, sample_metrics(5, 0.0));
  store.finish_run(id, sample_metrics(2, 0.25));  // replaces all five rows
  auto done = *store.get_run(id);
  EXPECT_EQ(done.status, RunStatus::kFinished);
  EXPECT_EQ(done.epochs_done, 2);
  EXPECT_EQ(done.train_seconds, 1.0);
  EXPECT_EQ(done.final_test_accuracy, 0.55);
  EXPECT_EQ(done.final_train_accuracy, 0.2);
  EXPECT_EQ(done.exit_code, 0);
  EXPECT_EQ(store.metrics(id).size(), 2u);
  store.fail_run(id, 137, "killed");
  EXPECT_EQ(store.get_run(id)->status, RunStatus::kFailed);
  EXPECT_EQ(store.get_run(id)->exit_code, 137);
  store.mark_queued(id);
  EXPECT_EQ(store.list_runs({"", "", RunStatus::kQueued}).size(), 1u);
  EXPECT_EQ(store.list_runs({"other-sweep", "", std::nullopt}).size(), 0u);
  EXPECT_EQ(store.list_runs({"grid", "standard", std::nullopt}).size(), 1u);

  AblationRecord a{0, id, "value", "test", 0.5, 10, {{0.1, 0.2}}, nlohmann::json::object(), ""};
  const int64_t first = store.put_ablation(a);
  a.baseline_accuracy = 0.75;
  EXPECT_EQ(store.put_ablation(a), first);  // same (run, method, split): replaced in place
  a.split = "train";
  store.put_ablation(a);
  EXPECT_EQ(store.ablations(id).size(), 2u);
  EXPECT_EQ(store.ablations(id)[0].baseline_accuracy, 0.75);
  a.accuracy = {{0.1, 0.2}, {0.3}};
  EXPECT_THROW(store.put_ablation(a), StoreError);  // ragged matrix

  ResultRecord g{0, std::nullopt, "kernel", "k", {{"v", 1}}, ""};
  store.put_result(g);
  g.payload = {{"v", 2}};
  store.put_result(g);  // replaced although run_id is NULL
  ASSERT_EQ(store.results("kernel").size(), 1u);
  EXPECT_EQ(store.results("kernel")[0].payload["v"], 2);
  store.put_result({0, id, "removal", "p", {{"v", 3}}, ""});

  store.delete_run(id);  // takes its metrics, ablations and results along
  EXPECT_EQ(count_rows(store, "epoch_metrics"), 0);
  EXPECT_EQ(count_rows(store, "ablations"), 0);
  EXPECT_EQ(count_rows(store, "results"), 1);  // the run-less kernel stays
}

TEST(Store, AFailedTransactionWritesNothing) {
  Store store(fresh_store("rollback"));
  EXPECT_THROW(store.transaction([&] {
    const int64_t id = store.upsert_run(sample_run("half"));
    store.replace_metrics(id, sample_metrics(3, 0.0));
    throw std::runtime_error("worker died mid-write");
  }),
               std::runtime_error);
  EXPECT_EQ(count_rows(store, "runs"), 0);
  EXPECT_EQ(count_rows(store, "epoch_metrics"), 0);
  // A run whose metrics cannot be written is not marked finished either.
  const int64_t id = store.upsert_run(sample_run("whole"));
  auto bad = sample_metrics(2, 0.0);
  bad[1].epoch = 1;  // duplicate (run, epoch): the insert fails
  EXPECT_THROW(store.finish_run(id, bad), StoreError);
  EXPECT_EQ(store.get_run(id)->status, RunStatus::kFailed);  // as sample_run left it
  EXPECT_EQ(count_rows(store, "epoch_metrics"), 0);
}

TEST(Store, BadPathsAndNewerSchemasGetClearErrors) {
  const fs::path missing = fresh_store("missing");
  try {
    Store store(missing, Store::Mode::kExisting);
    FAIL() << "opened a missing store";
  } catch (const StoreError& e) {
    EXPECT_NE(std::string(e.what()).find(missing.string()), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(missing));
  // A folder where the file should be, and a path below a regular file.
  const fs::path dir = fresh_store("unwritable").parent_path();
  fs::create_directories(dir / "is_a_folder.db");
  EXPECT_THROW(Store(dir / "is_a_folder.db"), StoreError);
  { std::ofstream(dir / "plain_file") << "x"; }
  try {
    Store store(dir / "plain_file" / "pelab.db");
    FAIL() << "opened a store below a regular file";
  } catch (const StoreError& e) {
    EXPECT_NE(std::string(e.what()).find("plain_file"), std::string::npos) << e.what();
  }
  const fs::path newer = fresh_store("newer");
  {
    Store store(newer);
    store.database().exec("UPDATE schema_version SET version = 99");
  }
  try {
    Store store(newer);
    FAIL() << "opened a store with a newer schema";
  } catch (const StoreError& e) {
    EXPECT_NE(std::string(e.what()).find("99"), std::string::npos) << e.what();
  }
  EXPECT_THROW(parse_run_status("done"), StoreError);
}

// Several processes write at once, each in its own transactions, as sweep workers do: every row
// arrives. Without WAL, busy timeouts and IMMEDIATE transactions, writers here hit SQLITE_BUSY
// (the children then exit non-zero) or lose rows.
TEST(Store, ConcurrentWriterProcessesLoseNothing) {
  const fs::path path = fresh_store("concurrent");
  { Store create(path); }
  constexpr int kWriters = 3, kRunsEach = 60, kEpochs = 4;
  std::vector<pid_t> children;
  for (int w = 0; w < kWriters; ++w) {
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      int status = 0;
      try {
        Store store(path);
        for (int i = 0; i < kRunsEach; ++i) {
          RunRecord r = sample_run("w" + std::to_string(w) + "/run" + std::to_string(i));
          const int64_t id = store.upsert_run(r);
          store.mark_running(id);
          store.finish_run(id, sample_metrics(kEpochs, double(w)));
          store.put_result({0, id, "spectrum", "k", {{"writer", w}}, ""});
          store.put_result({0, std::nullopt, "kernel", r.name, {{"i", i}}, ""});
        }
      } catch (const std::exception& e) {
        fprintf(stderr, "writer %d: %s\n", w, e.what());
        status = 1;
      }
      _exit(status);
    }
    children.push_back(pid);
  }
  for (pid_t pid : children) {
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "a writer failed";
  }
  Store store(path, Store::Mode::kExisting);
  EXPECT_EQ(count_rows(store, "runs"), kWriters * kRunsEach);
  EXPECT_EQ(count_rows(store, "epoch_metrics"), kWriters * kRunsEach * kEpochs);
  EXPECT_EQ(count_rows(store, "results"), 2 * kWriters * kRunsEach);
  EXPECT_EQ(store.list_runs({"", "", RunStatus::kFinished}).size(),
            static_cast<size_t>(kWriters * kRunsEach));
}
