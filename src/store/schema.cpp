#include "store/schema.h"

namespace pelab::store_schema {

const std::vector<std::string>& migrations() {
  static const std::vector<std::string> all = {
      // 0 -> 1: the first schema.
      R"sql(
CREATE TABLE schema_version (version INTEGER NOT NULL);
INSERT INTO schema_version (version) VALUES (0);

CREATE TABLE runs (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  run_dir TEXT NOT NULL,
  sweep TEXT NOT NULL DEFAULT '',
  setup TEXT NOT NULL DEFAULT '',
  config_toml TEXT NOT NULL,
  pe TEXT NOT NULL,
  task TEXT NOT NULL,
  seed INTEGER NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'finished', 'failed')),
  created_at TEXT NOT NULL,
  started_at TEXT NOT NULL DEFAULT '',
  finished_at TEXT NOT NULL DEFAULT '',
  train_seconds REAL NOT NULL DEFAULT 0,
  epochs_done INTEGER NOT NULL DEFAULT 0,
  final_train_accuracy REAL,
  final_test_accuracy REAL,
  exit_code INTEGER,
  error TEXT NOT NULL DEFAULT ''
);
CREATE INDEX runs_by_sweep ON runs (sweep, status);

-- Metric columns are nullable: SQLite stores NaN (a diverged loss) as NULL.
CREATE TABLE epoch_metrics (
  run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
  epoch INTEGER NOT NULL,
  train_loss REAL,
  train_accuracy REAL,
  test_loss REAL,
  test_accuracy REAL,
  lr REAL,
  seconds REAL,
  train_samples_per_s REAL,
  PRIMARY KEY (run_id, epoch)
);

CREATE TABLE ablations (
  id INTEGER PRIMARY KEY,
  run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
  method TEXT NOT NULL,
  split TEXT NOT NULL,
  baseline_accuracy REAL NOT NULL,
  samples INTEGER NOT NULL,
  layers INTEGER NOT NULL,
  heads INTEGER NOT NULL,
  accuracy_json TEXT NOT NULL,
  extra_json TEXT NOT NULL DEFAULT '{}',
  created_at TEXT NOT NULL,
  UNIQUE (run_id, method, split)
);

CREATE TABLE results (
  id INTEGER PRIMARY KEY,
  run_id INTEGER REFERENCES runs (id) ON DELETE CASCADE,
  kind TEXT NOT NULL,
  key TEXT NOT NULL,
  payload_json TEXT NOT NULL,
  created_at TEXT NOT NULL
);
-- NULL run ids are distinct in a plain UNIQUE constraint; 0 is never a run id.
CREATE UNIQUE INDEX results_unique ON results (IFNULL(run_id, 0), kind, key);
CREATE INDEX results_by_kind ON results (kind, run_id);
)sql",
      // 1 -> 2: the process that runs a run (pid, host), and the status `interrupted` for a
      // run left `running` by a process that is gone. SQLite cannot alter a CHECK constraint,
      // so the table is rebuilt (foreign keys are off while migrating: the child tables keep
      // their rows and refer to the new table by name).
      R"sql(
CREATE TABLE runs_v2 (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  run_dir TEXT NOT NULL,
  sweep TEXT NOT NULL DEFAULT '',
  setup TEXT NOT NULL DEFAULT '',
  config_toml TEXT NOT NULL,
  pe TEXT NOT NULL,
  task TEXT NOT NULL,
  seed INTEGER NOT NULL,
  status TEXT NOT NULL
    CHECK (status IN ('queued', 'running', 'finished', 'failed', 'interrupted')),
  created_at TEXT NOT NULL,
  started_at TEXT NOT NULL DEFAULT '',
  finished_at TEXT NOT NULL DEFAULT '',
  train_seconds REAL NOT NULL DEFAULT 0,
  epochs_done INTEGER NOT NULL DEFAULT 0,
  final_train_accuracy REAL,
  final_test_accuracy REAL,
  exit_code INTEGER,
  error TEXT NOT NULL DEFAULT '',
  pid INTEGER,
  host TEXT NOT NULL DEFAULT ''
);
INSERT INTO runs_v2 (id, name, run_dir, sweep, setup, config_toml, pe, task, seed, status,
  created_at, started_at, finished_at, train_seconds, epochs_done, final_train_accuracy,
  final_test_accuracy, exit_code, error)
  SELECT id, name, run_dir, sweep, setup, config_toml, pe, task, seed, status, created_at,
  started_at, finished_at, train_seconds, epochs_done, final_train_accuracy,
  final_test_accuracy, exit_code, error FROM runs;
DROP TABLE runs;
ALTER TABLE runs_v2 RENAME TO runs;
CREATE INDEX runs_by_sweep ON runs (sweep, status);
)sql",
  };
  return all;
}

}  // namespace pelab::store_schema
