#include "reproduce/plan.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <toml++/toml.h>

#include <algorithm>
#include <optional>

#include "config/config.h"
#include "config/user_paths.h"

namespace pelab {
namespace fs = std::filesystem;

namespace {

// A TOML integer, and only an integer: toml++'s value<int64_t>() also converts floats, and a
// float out of int64's range (`workers = 4e23`, found by fuzz_plan) is undefined behaviour there.
std::optional<int64_t> exact_integer(const toml::node& node) {
  if (const auto* i = node.as_integer()) return i->get();
  return std::nullopt;
}

std::vector<int64_t> integer_list(const toml::node* node, const std::string& key,
                                  const fs::path& file, std::vector<int64_t> fallback) {
  if (!node) return fallback;
  const auto* array = node->as_array();
  if (!array || array->empty())
    throw ConfigError(
        fmt::format("{}: '{}' must be a non-empty list of integers", file.string(), key));
  std::vector<int64_t> out;
  for (const auto& v : *array) {
    const auto i = exact_integer(v);
    if (!i) throw ConfigError(fmt::format("{}: '{}' holds a non-integer", file.string(), key));
    out.push_back(*i);
  }
  return out;
}

std::vector<int64_t> integer_list(const toml::table& t, const std::string& key,
                                  const fs::path& file, std::vector<int64_t> fallback) {
  return integer_list(t.get(key), key, file, std::move(fallback));
}

int64_t integer(const toml::table& t, const std::string& key, const fs::path& file,
                int64_t fallback, int64_t low, int64_t high) {
  const auto* node = t.get(key);
  if (!node) return fallback;
  const auto v = exact_integer(*node);
  if (!v || *v < low || *v > high)
    throw ConfigError(
        fmt::format("{}: '{}' must be an integer in [{}, {}]", file.string(), key, low, high));
  return *v;
}

std::vector<std::string> string_list(const toml::table& t, const std::string& key,
                                     const fs::path& file, std::vector<std::string> fallback,
                                     const std::vector<std::string>& accepted) {
  const auto* node = t.get(key);
  if (!node) return fallback;
  const auto* array = node->as_array();
  if (!array || array->empty())
    throw ConfigError(fmt::format("{}: '{}' must be a non-empty list of strings; accepted: {}",
                                  file.string(), key, fmt::join(accepted, ", ")));
  std::vector<std::string> out;
  for (const auto& v : *array) {
    const auto text = v.value<std::string>();
    if (!text || std::find(accepted.begin(), accepted.end(), *text) == accepted.end())
      throw ConfigError(fmt::format("{}: '{}' holds {}; accepted: {}", file.string(), key,
                                    text ? "'" + *text + "'" : std::string("a non-string"),
                                    fmt::join(accepted, ", ")));
    out.push_back(*text);
  }
  return out;
}

std::vector<double> number_list(const toml::table& t, const std::string& key, const fs::path& file,
                                std::vector<double> fallback) {
  const auto* array = t[key].as_array();
  if (!t.contains(key)) return fallback;
  std::vector<double> out;
  if (array)
    for (const auto& v : *array)
      if (const auto d = v.value<double>(); d && *d >= 1.0) out.push_back(*d);
  if (!array || array->empty() || out.size() != array->size())
    throw ConfigError(
        fmt::format("{}: '{}' must be a non-empty list of numbers >= 1", file.string(), key));
  return out;
}

std::string override_text(const toml::node& value) {
  // By node type: toml++'s value<T>() converts between types (an integer reads as a bool).
  if (value.is_string()) return *value.value<std::string>();
  if (value.is_boolean()) return *value.value<bool>() ? "true" : "false";
  if (value.is_integer()) return std::to_string(*value.value<int64_t>());
  if (value.is_floating_point()) return fmt::format("{}", *value.value<double>());
  return "";
}

// The plans shipped in configs/reproduce/, by name, for error messages.
std::vector<std::string> shipped_scales(const fs::path& source_dir) {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(source_dir / "configs" / "reproduce", ec))
    if (entry.path().extension() == ".toml") names.push_back(entry.path().stem().string());
  std::sort(names.begin(), names.end());
  return names;
}

// One plan file on top of the plan it extends (if any); depth guards against a cycle.
ReproducePlan load_plan_file(const fs::path& file, int depth) {
  toml::table t;
  try {
    t = toml::parse_file(file.string());
  } catch (const toml::parse_error& e) {
    throw ConfigError(fmt::format("{}: {}", file.string(), std::string(e.description())));
  }
  static const std::vector<std::string> known{"extends",
                                              "base",
                                              "seeds",
                                              "rotary_heads",
                                              "analysis_samples",
                                              "spectrum_positions",
                                              "removal_draws",
                                              "workers",
                                              "set",
                                              "experiments",
                                              "pes",
                                              "tasks",
                                              "train_samples_per_s",
                                              "expected_epochs",
                                              "length_factors",
                                              "task_seeds"};
  for (const auto& [key, value] : t)
    if (std::find(known.begin(), known.end(), std::string(key.str())) == known.end())
      throw ConfigError(
          fmt::format("{}: unknown key '{}'; accepted: extends, base, seeds, rotary_heads, "
                      "analysis_samples, spectrum_positions, removal_draws, "
                      "workers, experiments, pes, tasks, train_samples_per_s, "
                      "expected_epochs, length_factors, [task_seeds], [set]",
                      file.string(), std::string(key.str())));
  ReproducePlan p;
  if (const auto* node = t.get("extends")) {
    const auto parent = node->value<std::string>();
    if (!parent)
      throw ConfigError(fmt::format("{}: 'extends' must be a plan file name, e.g. \"small.toml\"",
                                    file.string()));
    const fs::path parent_file = file.parent_path() / *parent;
    if (!user_file_exists(parent_file))
      throw ConfigError(fmt::format("{}: extends '{}': no such plan (looked for {})", file.string(),
                                    *parent, parent_file.string()));
    if (depth >= 8)
      throw ConfigError(
          fmt::format("{}: extends: more than 8 plans deep (a cycle?)", file.string()));
    p = load_plan_file(parent_file, depth + 1);  // this file's keys replace the parent's
  }
  p.file = file;
  p.scale = file.stem().string();
  if (const auto base = t["base"].value<std::string>()) {
    p.base_config = file.parent_path() / *base;
    if (!user_path_exists(p.base_config))
      throw ConfigError(fmt::format("{}: base config '{}' not found (looked for {})", file.string(),
                                    *base, p.base_config.string()));
  }
  p.seeds = integer_list(t, "seeds", file, p.seeds);
  p.rotary_heads = integer_list(t, "rotary_heads", file, p.rotary_heads);
  p.analysis_samples = integer(t, "analysis_samples", file, p.analysis_samples, 0, 1 << 24);
  p.spectrum_positions = integer(t, "spectrum_positions", file, p.spectrum_positions, 2, 4096);
  p.removal_draws = integer(t, "removal_draws", file, p.removal_draws, 1, 100);
  p.workers = integer(t, "workers", file, p.workers, 1, 64);
  p.experiments = string_list(t, "experiments", file, p.experiments,
                              {"main", "rope_abs", "k_heads", "mla", "zoo", "length", "probes"});
  p.pes = string_list(t, "pes", file, p.pes,
                      {"nope", "sinusoidal", "learned", "relative", "alibi", "rope"});
  p.tasks = string_list(t, "tasks", file, p.tasks, {"distance", "count"});
  p.expected_epochs = integer(t, "expected_epochs", file, p.expected_epochs, 0, 1 << 20);
  if (const auto* node = t.get("train_samples_per_s")) {
    const auto v = node->value<double>();
    if (!v || *v <= 0)
      throw ConfigError(
          fmt::format("{}: 'train_samples_per_s' must be a number > 0", file.string()));
    p.train_samples_per_s = *v;
  }
  p.length_factors = number_list(t, "length_factors", file, p.length_factors);
  if (const auto* node = t.get("task_seeds")) {
    const auto* table = node->as_table();
    if (!table)
      throw ConfigError(fmt::format(
          "{}: 'task_seeds' must be a table of task = [seeds], e.g. [task_seeds] count = [0]",
          file.string()));
    for (const auto& [key, value] : *table) {
      const std::string task(key.str());
      if (std::find(p.tasks.begin(), p.tasks.end(), task) == p.tasks.end())
        throw ConfigError(fmt::format("{}: task_seeds.{}: not a task of this plan; accepted: {}",
                                      file.string(), task, fmt::join(p.tasks, ", ")));
      auto seeds = integer_list(&value, "task_seeds." + task, file, {});
      for (auto seed : seeds)
        if (std::find(p.seeds.begin(), p.seeds.end(), seed) == p.seeds.end())
          throw ConfigError(
              fmt::format("{}: task_seeds.{}: seed {} is not in seeds [{}]; accepted: "
                          "a subset of the plan's seeds",
                          file.string(), task, seed, fmt::join(p.seeds, ", ")));
      p.task_seeds[task] = std::move(seeds);
    }
  }
  if (const auto* set = t["set"].as_table())
    for (const auto& [key, value] : *set)
      p.fixed_overrides.push_back(std::string(key.str()) + "=" + override_text(value));
  return p;
}

}  // namespace

ReproducePlan load_plan(const std::string& scale_or_file, const fs::path& source_dir) {
  fs::path file = scale_or_file;
  if (!user_path_exists(file))
    file = source_dir / "configs" / "reproduce" / (scale_or_file + ".toml");
  if (!user_path_exists(file))
    throw ConfigError(fmt::format(
        "--scale '{}': no plan file {}; accepted: {} (configs/reproduce/) or a path to a plan file",
        scale_or_file, file.string(), fmt::join(shipped_scales(source_dir), ", ")));
  ReproducePlan p = load_plan_file(file, 0);
  // Every override must be a valid key and value: fail now, not after an hour of training.
  Config probe = load_config(p.base_config, p.fixed_overrides);
  (void)probe;
  return p;
}

std::vector<std::string> setup_overrides(const std::string& setup) {
  if (setup == "faithful")
    return {"model.mask=none", "model.kv_source=embedding", "model.alibi_slopes=paper",
            "model.pooling=all", "task.fillers_may_be_triggers=true"};
  if (setup == "standard")
    return {"model.mask=padding", "model.kv_source=residual", "model.alibi_slopes=standard",
            "model.pooling=valid", "task.fillers_may_be_triggers=false"};
  throw ConfigError(fmt::format("--setup '{}': accepted: faithful, standard, both", setup));
}

std::string setup_ablation_split(const std::string& setup) {
  return setup == "faithful" ? "all" : "test";
}

}  // namespace pelab
