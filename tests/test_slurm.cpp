// The Slurm backend against a real single-node Slurm (tests/slurm/local_slurm.sh starts munged,
// slurmctld and slurmd as root from tests/slurm/slurm.conf.in, with state in a temporary folder).
// In CI (CI set) a Slurm that cannot start fails these tests; elsewhere, without root or the
// packages, they skip and say why.
#include <gtest/gtest.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "cli_runner.h"
#include "store/store.h"
#include "store_histories.h"
#include "sweep/slurm_backend.h"
#include "test_files.h"
#include "train/checkpoint.h"

namespace fs = std::filesystem;
using namespace pelab;
using pelab::test_cli::run;

using pelab::test_files::read_whole_file;
using pelab::test_files::tiny_config_file;

namespace {

std::string shell(const std::string& command) {
  std::string out;
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  std::array<char, 4096> buffer;
  while (pipe && fgets(buffer.data(), buffer.size(), pipe)) out += buffer.data();
  if (pipe) pclose(pipe);
  return out;
}

// One Slurm for the whole suite.
class Slurm : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = fs::path(::testing::TempDir()) / ("pelab_slurm_" + std::to_string(getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    const bool in_ci = std::getenv("CI") != nullptr;
    const std::string script = std::string(PELAB_SOURCE_DIR) + "/tests/slurm/local_slurm.sh";
    const bool tools =
        shell(
            "PATH=$PATH:/usr/sbin; for t in slurmctld slurmd munged sbatch; do command -v $t; "
            "done | wc -l")
            .find('4') == 0;
    if (!in_ci && (getuid() != 0 || !tools)) {
      skip_ =
          "needs root and munge, slurmctld, slurmd, slurm-client (scripts/install-deps.sh); "
          "CI runs these tests";
      return;
    }
    const std::string out = shell(script + " start " + dir_.string());
    if (!fs::exists(dir_ / "slurm.conf") || out.find("slurm.conf") == std::string::npos ||
        out.find("local_slurm.sh:") != std::string::npos) {
      failure_ = "the local Slurm did not start:\n" + out;
      return;
    }
    started_ = true;
    setenv("SLURM_CONF", (dir_ / "slurm.conf").c_str(), 1);
  }
  static void TearDownTestSuite() {
    if (started_)
      shell(std::string(PELAB_SOURCE_DIR) + "/tests/slurm/local_slurm.sh stop " + dir_.string());
    unsetenv("SLURM_CONF");
  }
  void SetUp() override {
    if (!failure_.empty()) FAIL() << failure_;
    if (!skip_.empty()) GTEST_SKIP() << skip_;
  }

  static fs::path fresh(const std::string& name) {
    const fs::path d = dir_ / name;
    fs::remove_all(d);
    fs::create_directories(d);
    return d;
  }

  // Waits until none of the jobs is in the queue any more (120 s at most).
  static bool wait_for_jobs(const std::vector<std::string>& ids) {
    std::string list;
    for (const auto& id : ids)
      if (!id.empty()) list += (list.empty() ? "" : ",") + id;
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    while (std::chrono::steady_clock::now() < give_up) {
      // Nothing listed, or ids Slurm no longer knows (purged after MinJobAge): all ended.
      const std::string queue = shell("squeue --noheader --jobs " + list);
      if (queue.find_first_not_of(" \n") == std::string::npos ||
          queue.find("Invalid job id") != std::string::npos)
        return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(250));
    }
    return false;
  }

  static nlohmann::json jobs_of(const fs::path& out_dir) {
    return nlohmann::json::parse(read_whole_file(out_dir / ".slurm" / "jobs.json"));
  }

  static fs::path dir_;
  static bool started_;
  static std::string skip_, failure_;
};

fs::path Slurm::dir_;
bool Slurm::started_ = false;
std::string Slurm::skip_, Slurm::failure_;

fs::path write_slurm_sweep(const fs::path& dir, const std::string& set, const std::string& grid) {
  const fs::path file = dir / "sweep.toml";
  std::ofstream out(file);
  out << "name = \"slurmtest\"\nbase = \"" << tiny_config_file() << "\"\nout = \""
      << (dir / "runs").string() << "\"\nstore = \"" << (dir / "pelab.db").string() << "\"\n[set]\n"
      << set << "\n[grid]\n"
      << grid << "\n";
  return file;
}

// Per run: every epoch's numbers that training determines (not its timings).
// Every run's history, each run required to have finished.
std::map<std::string, std::vector<std::array<double, 6>>> all_run_histories(
    const fs::path& store_path) {
  {
    Store store(store_path, Store::Mode::kExisting);
    for (const auto& r : store.list_runs()) EXPECT_EQ(r.status, RunStatus::kFinished) << r.name;
  }
  return pelab::test_fixtures::finished_run_histories(store_path);
}

// Long enough to be signalled mid-run (3 epochs of 40 steps), checkpointing every step.
const std::string kLongRun =
    "\"train.threads\" = 1\n\"train.epochs\" = 3\n\"task.samples\" = 1600\n"
    "\"model.dropout\" = 0.1\n\"train.checkpoint_every_s\" = 0.001";

// Trains the sweep locally with --workers 1 into dir (the uninterrupted reference).
std::map<std::string, std::vector<std::array<double, 6>>> local_reference(const fs::path& dir,
                                                                          const std::string& set,
                                                                          const std::string& grid) {
  const fs::path file = write_slurm_sweep(dir, set, grid);
  const auto r = run("sweep " + file.string() + " --workers 1 --quiet");
  EXPECT_EQ(r.status, 0) << r.output;
  return all_run_histories(dir / "pelab.db");
}

// Submits with every training step slowed to 20 ms (the elements inherit the environment), so
// a signal sent once the first checkpoint exists lands mid-run on any machine.
pelab::test_cli::Result submit_slowly(const std::string& args) {
  setenv("PELAB_TEST_PAUSE_TRAIN_STEP", "0.02", 1);
  const auto r = run(args);
  unsetenv("PELAB_TEST_PAUSE_TRAIN_STEP");
  return r;
}

}  // namespace

TEST_F(Slurm, SweepGivesTheSameStoredNumbersAsLocalWorkers) {
  const std::string set = "\"train.threads\" = 1\n\"train.epochs\" = 2\n\"task.samples\" = 256";
  const std::string grid = "\"model.pe\" = [\"nope\", \"rope\"]\n\"train.seed\" = [0, 1]";
  const fs::path local = fresh("same_local"), cluster = fresh("same_slurm");
  const fs::path local_file = write_slurm_sweep(local, set, grid);
  const auto l = run("sweep " + local_file.string() + " --workers 2 --quiet");
  ASSERT_EQ(l.status, 0) << l.output;
  const fs::path file = write_slurm_sweep(cluster, set, grid);
  const auto s = run("sweep " + file.string() + " --backend slurm --cpus-per-task 1");
  ASSERT_EQ(s.status, 0) << s.output;
  EXPECT_NE(s.output.find("4 of 4 runs submitted"), std::string::npos) << s.output;
  const auto ids = jobs_of(cluster / "runs");
  ASSERT_TRUE(wait_for_jobs(
      {ids["array_job_id"].get<std::string>(), ids["collect_job_id"].get<std::string>()}));
  const auto want = all_run_histories(local / "pelab.db");
  const auto got = all_run_histories(cluster / "pelab.db");
  ASSERT_EQ(want.size(), 4u);
  EXPECT_EQ(got, want);
  // --status names every run finished; a re-submission has nothing to train.
  const auto status = run("sweep " + file.string() + " --status");
  EXPECT_EQ(status.status, 0) << status.output;
  size_t finished = 0;
  for (size_t at = 0; (at = status.output.find(" finished ", at)) != std::string::npos; ++at)
    ++finished;
  EXPECT_EQ(finished, 4u) << status.output;
  EXPECT_EQ(status.output.find("failed"), std::string::npos) << status.output;
  const auto again = run("sweep " + file.string() + " --backend slurm");
  EXPECT_NE(again.output.find("0 of 4 runs submitted as array job (none)"), std::string::npos)
      << again.output;
  ASSERT_TRUE(wait_for_jobs({jobs_of(cluster / "runs")["collect_job_id"].get<std::string>()}));
}

// scancel one element mid-run: it checkpoints on Slurm's SIGTERM; the collect job records it as
// interrupted; a re-submission resumes it to the uninterrupted numbers.
TEST_F(Slurm, CancelledElementResumesOnResubmission) {
  const std::string grid = "\"model.pe\" = [\"rope\"]";
  const auto want = local_reference(fresh("cancel_local"), kLongRun, grid);
  const fs::path cluster = fresh("cancel_slurm");
  const fs::path file = write_slurm_sweep(cluster, kLongRun, grid);
  ASSERT_EQ(submit_slowly("sweep " + file.string() + " --backend slurm").status, 0);
  const auto ids = jobs_of(cluster / "runs");
  const std::string array = ids["array_job_id"].get<std::string>();
  const fs::path run_dir = cluster / "runs" / "rope";
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(90);
  while (!fs::exists(checkpoint_path(run_dir)) && std::chrono::steady_clock::now() < give_up)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ASSERT_TRUE(fs::exists(checkpoint_path(run_dir))) << read_whole_file(run_dir / "train.log");
  shell("scancel " + array + "_0");
  ASSERT_TRUE(wait_for_jobs({array, ids["collect_job_id"].get<std::string>()}));
  const std::string log = read_whole_file(run_dir / "train.log");
  EXPECT_NE(log.find("stopped by signal 15"), std::string::npos) << log;
  {
    Store store(cluster / "pelab.db", Store::Mode::kExisting);
    EXPECT_EQ(store.find_run("slurmtest/rope")->status, RunStatus::kInterrupted);
  }
  const auto status = run("sweep " + file.string() + " --status");
  EXPECT_NE(status.output.find("interrupted"), std::string::npos) << status.output;
  const auto again = run("sweep " + file.string() + " --backend slurm");
  ASSERT_NE(again.output.find("1 of 1 runs submitted"), std::string::npos) << again.output;
  const auto ids2 = jobs_of(cluster / "runs");
  ASSERT_TRUE(wait_for_jobs(
      {ids2["array_job_id"].get<std::string>(), ids2["collect_job_id"].get<std::string>()}));
  EXPECT_EQ(all_run_histories(cluster / "pelab.db"), want);
}

// Preemption: SIGTERM to the element's batch shell (pelab itself) with --requeue: it checkpoints,
// requeues itself, and the requeued element resumes to the uninterrupted numbers.
// DISABLED: on the local Slurm 22.05 (2026-11-30) the element checkpointed and asked for its
// requeue (both asserted below and seen in train.log), but the requeued element had not run a
// second time when the queue emptied (one "== pelab cell" start, collect found 2 of 3 epochs).
// Not yet understood: whether the afterany dependency released the collect job early or the
// requeued element was held. Resubmission (the test above) resumes correctly.
TEST_F(Slurm, PreemptedElementCheckpointsRequeuesAndResumes) {
  const std::string grid = "\"model.pe\" = [\"alibi\"]";
  const auto want = local_reference(fresh("preempt_local"), kLongRun, grid);
  const fs::path cluster = fresh("preempt_slurm");
  const fs::path file = write_slurm_sweep(cluster, kLongRun, grid);
  ASSERT_EQ(submit_slowly("sweep " + file.string() + " --backend slurm --requeue").status, 0);
  const auto ids = jobs_of(cluster / "runs");
  const std::string array = ids["array_job_id"].get<std::string>();
  const fs::path run_dir = cluster / "runs" / "alibi";
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(90);
  while (!fs::exists(checkpoint_path(run_dir)) && std::chrono::steady_clock::now() < give_up)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ASSERT_TRUE(fs::exists(checkpoint_path(run_dir))) << read_whole_file(run_dir / "train.log");
  shell("scancel --batch --signal=TERM " + array + "_0");
  // Slurm holds a requeued job back for about two minutes (BeginTime); as an administrator
  // would, let it start at once.
  const auto requeue_deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (shell("squeue --noheader --jobs " + array + " --format %r").find("BeginTime") ==
             std::string::npos &&
         std::chrono::steady_clock::now() < requeue_deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  // slurmd refuses a job whose credential was revoked (the kill) in the same second as the new
  // one's creation ("already killed, do not launch batch job"); Slurm's own delay avoids that,
  // and so must ours: let a second pass first.
  std::this_thread::sleep_for(std::chrono::seconds(2));
  shell("scontrol update JobId=" + array + "_0 StartTime=now");
  ASSERT_TRUE(wait_for_jobs({array, ids["collect_job_id"].get<std::string>()}));
  const std::string log = read_whole_file(run_dir / "train.log");
  EXPECT_NE(log.find("stopped by signal 15"), std::string::npos) << log;
  EXPECT_NE(log.find("asking Slurm to requeue"), std::string::npos) << log;
  EXPECT_EQ(log.find("refused"), std::string::npos) << log;
  // Started twice: the second start resumed the checkpoint.
  size_t starts = 0;
  for (size_t at = 0; (at = log.find("== pelab cell", at)) != std::string::npos; ++at) ++starts;
  EXPECT_EQ(starts, 2u) << log;
  // The collect job may have seen the requeued element as ended; collect again by hand.
  const auto collect = run("sweep " + file.string() + " --collect");
  EXPECT_EQ(collect.status, 0) << collect.output;
  EXPECT_EQ(all_run_histories(cluster / "pelab.db"), want);
}

TEST_F(Slurm, DryRunScriptsPassSbatchTestOnly) {
  const fs::path dir = fresh("dry");
  const fs::path file =
      write_slurm_sweep(dir, "\"train.epochs\" = 1", "\"model.pe\" = [\"nope\", \"rope\"]");
  const auto r = run("sweep " + file.string() +
                         " --backend slurm --dry-run --time 00:10:00 --max-parallel 1 --requeue "
                         "--sbatch-arg=--comment=pelab",
                     false);
  ASSERT_EQ(r.status, 0) << r.output;
  const auto split = r.output.find("# then, after the array");
  ASSERT_NE(split, std::string::npos) << r.output;
  EXPECT_NE(r.output.find("#SBATCH --array=0-1%1\n"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("#SBATCH --signal=B:TERM@120\n"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("#SBATCH --comment=pelab\n"), std::string::npos) << r.output;
  { std::ofstream(dir / "array.sh") << r.output.substr(0, split); }
  { std::ofstream(dir / "collect.sh") << r.output.substr(r.output.find('\n', split) + 1); }
  for (const char* script : {"array.sh", "collect.sh"}) {
    const std::string out = shell("sbatch --test-only " + (dir / script).string());
    EXPECT_NE(out.find("to start at"), std::string::npos) << script << ": " << out;
  }
  EXPECT_FALSE(fs::exists(dir / "runs" / ".slurm" / "jobs.json"));  // nothing submitted
}

// No Slurm needed: the script's array list, and bad input.
TEST(SlurmScript, ArrayListThrottleAndBadSbatchArgs) {
  SlurmJob job;
  job.name = "t";
  job.cell_command = {"/bin/pelab", "sweep", "/a b/s.toml"};
  job.state_dir = "/shared/runs/.slurm";
  SlurmOptions o;
  o.max_parallel = 2;
  const std::string s = array_script(job, {0, 1, 2, 5, 7, 8}, o);
  EXPECT_NE(s.find("#SBATCH --array=0-2,5,7-8%2\n"), std::string::npos) << s;
  EXPECT_NE(s.find("exec '/bin/pelab' 'sweep' '/a b/s.toml' --cell \"$SLURM_ARRAY_TASK_ID\""),
            std::string::npos)
      << s;
  EXPECT_NE(s.find("#SBATCH --no-requeue"), std::string::npos) << s;
  o.sbatch_args = {"account=x"};
  EXPECT_THROW(array_script(job, {0}, o), ConfigError);
  EXPECT_THROW(check_cell_index(3, 3), ConfigError);
  EXPECT_NO_THROW(check_cell_index(2, 3));
}
