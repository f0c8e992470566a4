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
#include "store_histories.h"
#include "test_files.h"

namespace fs = std::filesystem;
using namespace pelab;
using pelab::test_cli::run;

using pelab::test_files::fresh_test_dir;

using pelab::test_fixtures::finished_run_histories;
namespace {

fs::path write_cells_sweep(const fs::path& dir) {
  const fs::path file = dir / "sweep.toml";
  std::ofstream out(file);
  out << "name = \"cells\"\nbase = \"" << PELAB_SOURCE_DIR << "/configs/tiny.toml\"\nout = \""
      << (dir / "runs").string() << "\"\nstore = \"" << (dir / "pelab.db").string()
      << "\"\n[set]\n\"train.threads\" = 1\n\"train.epochs\" = 2\n\"task.samples\" = 192\n"
      << "[grid]\n\"model.pe\" = [\"nope\", \"rope\", \"alibi\"]\n";
  return file;
}

}  // namespace

TEST(SweepCells, CellsThenCollectEqualALocalSweep) {
  const fs::path local = fresh_test_dir("cells_local"), cells = fresh_test_dir("cells_cells");
  const auto l = run("sweep " + write_cells_sweep(local).string() + " --workers 2 --quiet");
  ASSERT_EQ(l.status, 0) << l.output;
  const fs::path file = write_cells_sweep(cells);
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
  const auto want = finished_run_histories(local / "pelab.db");
  ASSERT_EQ(want.size(), 3u);
  EXPECT_EQ(finished_run_histories(cells / "pelab.db"), want);
}

TEST(SweepCells, BadCellIndexIsRefused) {
  const fs::path dir = fresh_test_dir("cells_bad");
  const auto r = run("sweep " + write_cells_sweep(dir).string() + " --cell 3");
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("accepted: 0 to 2"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(dir / "runs"));
}
