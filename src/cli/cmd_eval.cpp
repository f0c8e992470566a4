#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "analysis/length_generalization.h"
#include "cli/commands.h"
#include "report/length_section.h"
#include "store/store.h"
#include "train/early_stopping.h"
#include "train/eval_overrides.h"
#include "train/trainer.h"

namespace pelab::cli {
namespace {

std::vector<int64_t> parse_lengths(const std::string& text) {
  std::vector<int64_t> out;
  size_t start = 0;
  while (start <= text.size()) {
    const size_t comma = std::min(text.find(',', start), text.size());
    const std::string item = text.substr(start, comma - start);
    size_t used = 0;
    int64_t value = 0;
    try {
      value = std::stoll(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (item.empty() || used != item.size() || value < 1)
      throw ConfigError(
          fmt::format("--lengths: bad entry '{}' in '{}'; accepted: positive "
                      "integers separated by commas, e.g. 48,64,96",
                      item, text));
    out.push_back(value);
    start = comma + 1;
  }
  return out;
}

// The store's record of the run in `run_dir`; throws when the store does not hold it.
RunRecord stored_run(const Store& store, const std::string& run_dir) {
  const auto wanted = std::filesystem::weakly_canonical(run_dir);
  for (const auto& r : store.list_runs())
    if (std::filesystem::weakly_canonical(r.run_dir) == wanted) return r;
  throw std::runtime_error(
      fmt::format("--store {}: holds no run with folder {}", store.path().string(), run_dir));
}

}  // namespace

void add_eval(CLI::App& app) {
  struct Args {
    std::vector<std::string> positional;
    std::string split = "test", lengths, figure, store_path;
    int64_t samples = 0;
    bool json = false, clamp = false;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = app.add_subcommand(
      "eval", "Evaluate a run's checkpoint on its data, or runs at longer lengths (--lengths)");
  cmd->add_option("runs", args->positional,
                  "run folder(s) (several only with --lengths), then key=value overrides applied "
                  "to the evaluated model with --lengths (e.g. model.rope_scaling=...)")
      ->required();
  cmd->add_option("--split", args->split, "test | train | all")
      ->check(CLI::IsMember({"test", "train", "all"}));
  cmd->add_flag("--json", args->json,
                "print {\"accuracy\":..,\"loss\":..,\"samples\":..} (with --lengths: one object "
                "per run with its points)");
  cmd->add_option("--lengths", args->lengths,
                  "comma-separated padded lengths >= the training length: the task regenerated "
                  "there with its label range kept (docs/ANALYSES.md)");
  cmd->add_flag("--clamp-positions", args->clamp,
                "with --lengths: positions beyond a learned table reuse its last entry (learned, "
                "relative); without it such PEs are refused beyond their table");
  cmd->add_option("--samples", args->samples,
                  "with --lengths: evaluate the first N sequences of the split (0 = all)")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 30));
  cmd->add_option("--figure", args->figure,
                  "with --lengths: accuracy-vs-length SVG (default FIRST_RUN/length.svg; 'none')");
  cmd->add_option("--store", args->store_path,
                  "with --lengths: also store each result (kind length_generalization) in this "
                  "store, which must hold the runs");
  cmd->callback([args] {
    std::vector<std::string> runs, overrides;
    for (const auto& p : args->positional)
      (p.find('=') != std::string::npos ? overrides : runs).push_back(p);
    if (runs.empty()) throw CLI::ValidationError("runs", "name at least one run folder");
    for (const auto& r : runs)
      if (!std::filesystem::is_directory(r))
        throw CLI::ValidationError("runs", fmt::format("'{}' is not a run folder", r));
    if (args->lengths.empty()) {
      if (runs.size() != 1 || args->clamp || !args->figure.empty() || !args->store_path.empty() ||
          args->samples != 0)
        throw CLI::ValidationError(
            "eval",
            "several runs, --clamp-positions, --samples, --figure and --store need --lengths");
      TrainState state = load_checkpoint(reported_checkpoint_path(runs[0]));
      if (!overrides.empty()) {
        state.config = config_with_eval_overrides(state.config, overrides);
        state.model = rebuild_model(state.model, state.config);
      }
      configure_threads(state.config.train.threads);
      const DatasetSplit split = make_split(state.config.task);
      const EvalResult r =
          evaluate(state.model, select_split(split, args->split), eval_batch_size(state.config));
      if (args->json) {
        nlohmann::json j = {{"accuracy", r.accuracy}, {"loss", r.loss}, {"samples", r.samples}};
        fmt::print("{}\n", j.dump());
      } else {
        fmt::print("{} split of {} (epoch {}): accuracy {:.4f}  loss {:.4f}  samples {}\n",
                   args->split, runs[0], state.epochs_done, r.accuracy, r.loss, r.samples);
      }
      return;
    }
    LengthOptions options;
    options.lengths = parse_lengths(args->lengths);
    options.overrides = overrides;
    options.clamp_positions = args->clamp;
    options.split = args->split;
    options.max_samples = args->samples;
    std::vector<std::pair<std::string, LengthResult>> results;
    for (const auto& run_dir : runs) {
      TrainState state = load_checkpoint(reported_checkpoint_path(run_dir));
      configure_threads(state.config.train.threads);
      results.emplace_back(run_dir, evaluate_lengths(state, options));
    }
    if (!args->store_path.empty()) {
      Store store(args->store_path, Store::Mode::kExisting);
      std::vector<ResultRecord> records;
      for (const auto& [run_dir, r] : results)
        records.push_back({0, stored_run(store, run_dir).id, "length_generalization",
                           length_result_key(r, overrides), length_result_to_json(r), ""});
      store.transaction([&] {
        for (const auto& record : records) store.put_result(record);
      });
    }
    const std::string figure = args->figure.empty()
                                   ? (std::filesystem::path(runs[0]) / "length.svg").string()
                                   : args->figure;
    if (figure != "none") {
      std::vector<std::pair<std::string, LengthResult>> named;
      for (const auto& [run_dir, r] : results)
        named.emplace_back(std::filesystem::path(run_dir).filename().string(), r);
      write_length_figure(figure, named, "Accuracy against evaluation length");
      if (!args->json) fmt::print("figure: {}\n", figure);
    }
    if (args->json) {
      nlohmann::json out = nlohmann::json::array();
      for (const auto& [run_dir, r] : results) {
        auto j = length_result_to_json(r);
        j["run"] = run_dir;
        out.push_back(j);
      }
      fmt::print("{}\n", (runs.size() == 1 ? out[0] : out).dump());
      return;
    }
    for (const auto& [run_dir, r] : results) {
      fmt::print("{} ({} on {}, trained at length {}{}):\n", run_dir, r.pe, r.task, r.train_length,
                 r.clamped ? ", positions clamped" : "");
      for (const auto& p : r.points)
        fmt::print("  length {:5d} ({:.2f}x): accuracy {:.4f}  loss {:.4f}  samples {}\n", p.length,
                   double(p.length) / double(r.train_length), p.accuracy, p.loss, p.samples);
    }
  });
}

}  // namespace pelab::cli
