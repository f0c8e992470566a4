#include "sweep/slurm_backend.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

#include "analysis/training_probe.h"
#include "sweep/run_folder.h"
#include "sweep/worker.h"
#include "train/interrupt.h"
#include "train/trainer.h"

namespace pelab {
namespace fs = std::filesystem;

namespace {

// Single-quoted for bash: every character literal.
std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

std::string shell_command(const std::vector<std::string>& argv) {
  std::vector<std::string> quoted;
  for (const auto& a : argv) quoted.push_back(shell_quote(a));
  return fmt::format("{}", fmt::join(quoted, " "));
}

struct CommandResult {
  int status = 0;
  std::string output;  // stdout and stderr
};

CommandResult run_command(const std::vector<std::string>& argv) {
  CommandResult r;
  FILE* pipe = popen((shell_command(argv) + " 2>&1").c_str(), "r");
  if (!pipe) throw std::runtime_error(fmt::format("cannot run '{}'", argv.front()));
  std::array<char, 4096> buffer;
  while (fgets(buffer.data(), buffer.size(), pipe)) r.output += buffer.data();
  const int status = pclose(pipe);
  r.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

// "0-3,7,9-10": Slurm's compact form of a sorted index list.
std::string index_ranges(const std::vector<int64_t>& cells) {
  std::vector<std::string> parts;
  for (size_t i = 0; i < cells.size();) {
    size_t j = i;
    while (j + 1 < cells.size() && cells[j + 1] == cells[j] + 1) ++j;
    parts.push_back(j == i ? std::to_string(cells[i]) : fmt::format("{}-{}", cells[i], cells[j]));
    i = j + 1;
  }
  return fmt::format("{}", fmt::join(parts, ","));
}

// The #SBATCH lines every job of a submission shares.
std::string common_directives(const SlurmOptions& o) {
  std::string s;
  if (!o.partition.empty()) s += fmt::format("#SBATCH --partition={}\n", o.partition);
  if (!o.time.empty()) s += fmt::format("#SBATCH --time={}\n", o.time);
  if (!o.mem.empty()) s += fmt::format("#SBATCH --mem={}\n", o.mem);
  s += fmt::format("#SBATCH --cpus-per-task={}\n", o.cpus_per_task);
  s += fmt::format("#SBATCH --chdir={}\n", fs::current_path().string());
  for (const auto& a : o.sbatch_args) {
    if (a.empty() || a.front() != '-' || a.find('\n') != std::string::npos)
      throw ConfigError(fmt::format(
          "--sbatch-arg: bad value '{}'; accepted: one sbatch option such as --account=NAME or "
          "--qos=high",
          a));
    s += fmt::format("#SBATCH {}\n", a);
  }
  return s;
}

std::string submit(const fs::path& script, const std::vector<std::string>& extra) {
  std::vector<std::string> argv{"sbatch", "--parsable"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  argv.push_back(script.string());
  const CommandResult r = run_command(argv);
  std::string id = r.output.substr(0, r.output.find_first_of(";\n"));
  if (r.status != 0 || id.empty() || id.find_first_not_of("0123456789") != std::string::npos)
    throw std::runtime_error(
        fmt::format("sbatch refused '{}' (exit code {}): {}", script.string(), r.status, r.output));
  return id;
}

std::string read_text(const fs::path& file) {
  std::ifstream in(file);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Asks Slurm to requeue this array element (or job); its next start resumes the checkpoint.
void request_requeue() {
  const char* array_job = std::getenv("SLURM_ARRAY_JOB_ID");
  const char* task = std::getenv("SLURM_ARRAY_TASK_ID");
  const char* job = std::getenv("SLURM_JOB_ID");
  std::string id;
  if (array_job && task) {
    id = fmt::format("{}_{}", array_job, task);
  } else if (job) {
    id = job;
  } else {
    fmt::print(stderr, "pelab: --requeue outside a Slurm job: nothing to requeue\n");
    return;
  }
  // Printed first: Slurm may end this process as soon as the requeue takes effect.
  fmt::print(stderr, "pelab: asking Slurm to requeue {}; it resumes from this checkpoint\n", id);
  std::fflush(stderr);
  const CommandResult r = run_command({"scontrol", "requeue", id});
  if (r.status != 0)
    fmt::print(stderr, "pelab: scontrol requeue {} refused (exit code {}): {}\n", id, r.status,
               r.output);
}

}  // namespace

std::optional<int64_t> slurm_cpus_per_task() {
  const char* value = std::getenv("SLURM_CPUS_PER_TASK");
  if (!value) return std::nullopt;
  char* end = nullptr;
  const long long n = std::strtoll(value, &end, 10);
  if (end == value || *end != '\0' || n <= 0) return std::nullopt;
  return n;
}

std::vector<int64_t> unfinished_cells(const std::vector<SweepRun>& runs) {
  std::vector<int64_t> cells;
  for (size_t i = 0; i < runs.size(); ++i)
    if (static_cast<int64_t>(folder_metrics(runs[i].run_dir).size()) < runs[i].config.train.epochs)
      cells.push_back(static_cast<int64_t>(i));
  return cells;
}

std::string array_script(const SlurmJob& job, const std::vector<int64_t>& cells,
                         const SlurmOptions& o) {
  std::string s = "#!/bin/bash\n";
  s += fmt::format(
      "# {}: one array element per unfinished run; each trains only its own run folder (written "
      "by pelab --backend slurm; docs/CLUSTER.md)\n",
      job.name);
  s += fmt::format("#SBATCH --job-name={}\n", o.job_name);
  s += fmt::format("#SBATCH --array={}{}\n", index_ranges(cells),
                   o.max_parallel > 0 ? fmt::format("%{}", o.max_parallel) : "");
  s += fmt::format("#SBATCH --output={}/%x-%A_%a.out\n", job.state_dir.string());
  // B: signals the batch shell, which `exec` below makes pelab itself: it checkpoints and exits.
  s += fmt::format("#SBATCH --signal=B:TERM@{}\n", o.signal_seconds);
  s += o.requeue ? "#SBATCH --requeue\n" : "#SBATCH --no-requeue\n";
  s += "#SBATCH --open-mode=append\n";  // a requeued element keeps its first start's output
  s += common_directives(o);
  s += fmt::format("exec {} --cell \"$SLURM_ARRAY_TASK_ID\"\n", shell_command(job.cell_command));
  return s;
}

std::string collect_script(const SlurmJob& job, const SlurmOptions& o) {
  std::string s = "#!/bin/bash\n";
  s += fmt::format("# {}: records the run folders in the store once the array ended\n", job.name);
  s += fmt::format("#SBATCH --job-name={}-collect\n", o.job_name);
  s += fmt::format("#SBATCH --output={}/%x-%j.out\n", job.state_dir.string());
  s += "#SBATCH --no-requeue\n";
  s += common_directives(o);
  s += fmt::format("exec {}\n", shell_command(job.collect_command));
  return s;
}

SlurmSubmission submit_slurm(const SlurmJob& job, const SlurmOptions& options) {
  SlurmSubmission out;
  const std::vector<int64_t> cells = unfinished_cells(job.runs);
  out.cells = static_cast<int64_t>(cells.size());
  fs::create_directories(job.state_dir);
  const fs::path collect_file = job.state_dir / "collect.sh";
  write_file_atomically(collect_file, collect_script(job, options));
  std::vector<std::string> dependency;
  if (!cells.empty()) {
    const fs::path array_file = job.state_dir / "array.sh";
    write_file_atomically(array_file, array_script(job, cells, options));
    out.array_job_id = submit(array_file, {});
    dependency.push_back("--dependency=afterany:" + out.array_job_id);
  }
  out.collect_job_id = submit(collect_file, dependency);
  const nlohmann::json ids = {
      {"array_job_id", out.array_job_id}, {"collect_job_id", out.collect_job_id}, {"cells", cells}};
  write_file_atomically(job.state_dir / "jobs.json", ids.dump(1));
  return out;
}

std::string slurm_status(const SlurmJob& job) {
  std::string out;
  std::map<int64_t, std::string> queue_state;  // cell -> PENDING, RUNNING, ...
  std::string array_id, collect_id;
  const fs::path jobs_file = job.state_dir / "jobs.json";
  if (fs::exists(jobs_file)) {
    try {
      const auto ids = nlohmann::json::parse(read_text(jobs_file));
      array_id = ids.at("array_job_id").get<std::string>();
      collect_id = ids.at("collect_job_id").get<std::string>();
    } catch (const std::exception& e) {
      out += fmt::format("cannot read '{}': {}\n", jobs_file.string(), e.what());
    }
  }
  if (array_id.empty() && collect_id.empty()) {
    out += fmt::format("{}: no submission recorded in '{}'\n", job.name, jobs_file.string());
  } else {
    out += fmt::format("{}: array job {}, collect job {}\n", job.name,
                       array_id.empty() ? "(none)" : array_id, collect_id);
    const CommandResult q =
        run_command({"squeue", "--noheader", "--array", "--jobs",
                     array_id.empty() ? collect_id : array_id + "," + collect_id, "--format",
                     "%i %K %T %M %R"});
    if (q.status != 0) {
      out += fmt::format("squeue: {}", q.output);
    } else {
      std::istringstream lines(q.output);
      std::string line;
      while (std::getline(lines, line)) {
        std::istringstream fields(line);
        std::string id, task, state;
        fields >> id >> task >> state;
        if (id.rfind(array_id + "_", 0) == 0 && !array_id.empty() &&
            task.find_first_not_of("0123456789") == std::string::npos && !task.empty())
          queue_state[std::stoll(task)] = state;
        else if (id == collect_id)
          out += fmt::format("collect job {}: {}\n", collect_id, state);
      }
    }
  }
  out += fmt::format("{:>5}  {:<40} {:<12} {}\n", "cell", "run", "state", "epochs");
  for (size_t i = 0; i < job.runs.size(); ++i) {
    const SweepRun& run = job.runs[i];
    const auto done = folder_metrics(run.run_dir);
    const int64_t epochs = run.config.train.epochs;
    std::string state;
    bool show_log = false;
    const fs::path log = run.run_dir / "train.log";
    if (static_cast<int64_t>(done.size()) >= epochs) {
      state = "finished";
    } else if (auto it = queue_state.find(static_cast<int64_t>(i)); it != queue_state.end()) {
      state = it->second;
      for (auto& c : state) c = static_cast<char>(std::tolower(c));
    } else if (fs::exists(run.run_dir / "config.toml")) {
      const std::string tail = file_tail(log, 4000);
      state = tail.find("stopped by signal") != std::string::npos ? "interrupted" : "failed";
      show_log = true;
    } else {
      state = "not started";
    }
    out +=
        fmt::format("{:>5}  {:<40} {:<12} {}/{}\n", i, run.store_name, state, done.size(), epochs);
    if (show_log) {
      std::istringstream tail(file_tail(log, 600));
      std::vector<std::string> lines;
      for (std::string line; std::getline(tail, line);)
        if (!line.empty()) lines.push_back(line);
      const size_t from = lines.size() > 3 ? lines.size() - 3 : 0;
      for (size_t k = from; k < lines.size(); ++k) out += "         | " + lines[k] + "\n";
    }
  }
  return out;
}

void check_cell_index(int64_t index, int64_t count) {
  if (index < 0 || index >= count)
    throw ConfigError(
        fmt::format("--cell: bad value {}; accepted: 0 to {} (the runs, in the order "
                    "--list prints them)",
                    index, count - 1));
}

void run_cell(const SweepSpec& spec, const SweepRun& run, bool requeue) {
  const RunFolder folder = inspect_run_folder(spec, run);
  if (folder.complete(run)) {
    fmt::print("{}: already finished in {}\n", run.name, run.run_dir.string());
    return;
  }
  fs::create_directories(run.run_dir);
  const fs::path log = run.run_dir / "train.log";
  fmt::print(stderr, "{}: training in {}; output appended to {}\n", run.name, run.run_dir.string(),
             log.string());
  std::fflush(stdout);
  std::fflush(stderr);
  const int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) throw std::runtime_error(fmt::format("cannot open '{}'", log.string()));
  dup2(fd, STDOUT_FILENO);
  dup2(fd, STDERR_FILENO);
  close(fd);
  const char* job = std::getenv("SLURM_JOB_ID");
  fmt::print("== pelab cell {} (Slurm job {})\n", run.name, job ? job : "none");
  std::fflush(stdout);
  // Without a checkpoint the sweep's config is the truth (as for a local sweep's fresh start).
  if (!folder.has_checkpoint)
    write_file_atomically(run.run_dir / "config.toml", to_toml(run.config));
  TrainOptions options;
  options.epoch_probe = [](Transformer& model, const DatasetSplit& split,
                           const Config& config) -> nlohmann::json {
    if (!config.train.track_spectra) return nullptr;
    return training_probe(model, split, config.train);
  };
  try {
    resume_run(run.run_dir, options, folder.extend_epochs ? run.config.train.epochs : 0);
  } catch (const TrainingInterrupted&) {
    if (requeue) request_requeue();
    throw;
  }
}

}  // namespace pelab
