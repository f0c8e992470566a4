// The pieces of the Slurm backend that need no Slurm: `pelab sweep FILE --cell I` trains one run
// folder without opening the store, `--collect` ingests the folders, and the two together give
// the numbers of an ordinary `--workers 2` sweep.
#include <gtest/gtest.h>

#include <array>
#include <filesystem>
#include <fstream>
#include <map>

#include "cli_runner.h"
#include "store/store.h"

namespace fs = std::filesystem;
using namespace pelab;
using pelab::test_cli::run;

namespace {

fs::path fresh_dir(const std::string& name) {
  const fs::path dir = fs::path(::testing::TempDir()) / ("pelab_cells_" + name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

fs::path write_sweep(const fs::path& dir) {
  const fs::path file = dir / "sweep.toml";
  std::ofstream out(file);
  out << "name = \"cells\"\nbase = \"" << PELAB_SOURCE_DIR << "/configs/tiny.toml\"\nout = \""
      << (dir / "runs").string() << "\"\nstore = \"" << (dir / "pelab.db").string()
      << "\"\n[set]\n\"train.threads\" = 1\n\"train.epochs\" = 2\n\"task.samples\" = 192\n"
      << "[grid]\n\"model.pe\" = [\"nope\", \"rope\", \"alibi\"]\n";
  return file;
}

std::map<std::string, std::vector<std::array<double, 6>>> results_of(const fs::path& store_path) {
  Store store(store_path, Store::Mode::kExisting);
  std::map<std::string, std::vector<std::array<double, 6>>> out;
  for (const auto& r : store.list_runs()) {
    if (r.status != RunStatus::kFinished) continue;
    for (const auto& m : store.metrics(r.id))
      out[r.name].push_back(
          {double(m.epoch), m.train_loss, m.train_accuracy, m.test_loss, m.test_accuracy, m.lr});
  }
  return out;
}

}  // namespace

TEST(SweepCells, CellsThenCollectEqualALocalSweep) {
  const fs::path local = fresh_dir("local"), cells = fresh_dir("cells");
  const auto l = run("sweep " + write_sweep(local).string() + " --workers 2 --quiet");
  ASSERT_EQ(l.status, 0) << l.output;
  const fs::path file = write_sweep(cells);
  for (int i : {0, 2}) {
    const auto c = run("sweep " + file.string() + " --cell " + std::to_string(i));
    ASSERT_EQ(c.status, 0) << c.output;
  }
  // Elements never open the store.
  EXPECT_FALSE(fs::exists(cells / "pelab.db"));
  // Cell 1 only started: a config, no checkpoint (as a kill before the first checkpoint leaves).
  fs::create_directories(cells / "runs" / "rope");
  fs::copy_file(local / "runs" / "rope" / "config.toml", cells / "runs" / "rope" / "config.toml");
  const auto partial = run("sweep " + file.string() + " --collect --quiet");
  EXPECT_EQ(partial.status, 1) << partial.output;
  {
    Store store(cells / "pelab.db", Store::Mode::kExisting);
    EXPECT_EQ(store.find_run("cells/nope")->status, RunStatus::kFinished);
    EXPECT_EQ(store.find_run("cells/rope")->status, RunStatus::kInterrupted);
    EXPECT_EQ(store.find_run("cells/alibi")->status, RunStatus::kFinished);
  }
  const auto c1 = run("sweep " + file.string() + " --cell 1");
  ASSERT_EQ(c1.status, 0) << c1.output;
  const auto again = run("sweep " + file.string() + " --cell 1");  // already complete
  EXPECT_EQ(again.status, 0) << again.output;
  EXPECT_NE(again.output.find("already finished"), std::string::npos) << again.output;
  const auto all = run("sweep " + file.string() + " --collect --quiet");
  EXPECT_EQ(all.status, 0) << all.output;
  const auto want = results_of(local / "pelab.db");
  ASSERT_EQ(want.size(), 3u);
  EXPECT_EQ(results_of(cells / "pelab.db"), want);
}

TEST(SweepCells, BadCellIndexIsRefused) {
  const fs::path dir = fresh_dir("bad");
  const auto r = run("sweep " + write_sweep(dir).string() + " --cell 3");
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("accepted: 0 to 2"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(dir / "runs"));
}
