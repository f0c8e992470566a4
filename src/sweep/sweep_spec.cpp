#include "sweep/sweep_spec.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <toml++/toml.h>

#include <algorithm>
#include <cctype>
#include <map>
#include <set>

#include "config/suggest.h"
#include "config/user_paths.h"
#include "tasks/task.h"

namespace pelab {
namespace fs = std::filesystem;

namespace {

// More runs than any sweep on one machine could train: a grid beyond it is refused unexpanded.
constexpr uint64_t kMaxSweepRuns = 10000;

const std::vector<std::string> kTopLevelKeys = {"name",  "base", "setup", "out",
                                                "store", "set",  "grid"};

// Text of a TOML leaf as a key=value override reads it.
std::string leaf_text(const std::string& where, const toml::node& node) {
  if (auto s = node.as_string()) return s->get();
  if (auto i = node.as_integer()) return std::to_string(i->get());
  if (auto d = node.as_floating_point()) return fmt::format("{}", d->get());
  if (auto b = node.as_boolean()) return b->get() ? "true" : "false";
  throw ConfigError(
      fmt::format("{}: unsupported value; accepted: a string, number or boolean", where));
}

// Flattens nested tables so that both `"model.pe" = ...` and `model.pe = ...` give "model.pe".
void flatten(const toml::table& table, const std::string& prefix,
             std::vector<std::pair<std::string, const toml::node*>>& out) {
  for (const auto& [k, node] : table) {
    const std::string key =
        prefix.empty() ? std::string(k.str()) : prefix + "." + std::string(k.str());
    if (auto sub = node.as_table()) {
      flatten(*sub, key, out);
    } else {
      out.emplace_back(key, &node);
    }
  }
}

std::string string_field(const toml::table& table, const std::string& key,
                         const std::string& file) {
  const toml::node* node = table.get(key);
  if (!node) return "";
  if (auto s = node->as_string()) return s->get();
  throw ConfigError(fmt::format("{}: '{}' must be a string", file, key));
}

bool valid_name(const std::string& name) {
  return !name.empty() &&
         std::all_of(name.begin(), name.end(),
                     [](char c) {
                       return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' ||
                              c == '.';
                     }) &&
         name != "." && name != "..";
}

// Folder-safe form of a grid value.
std::string sanitize(const std::string& value) {
  std::string out = value;
  for (char& c : out)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.' ||
          c == '+'))
      c = '_';
  return out;
}

// Where the base config is: relative paths are tried next to the sweep file, then in the cwd.
fs::path resolve_base(const std::string& base, const fs::path& sweep_file) {
  const fs::path given(base);
  if (given.is_absolute()) {
    if (!user_file_exists(given))
      throw ConfigError(
          fmt::format("{}: base config '{}' does not exist; accepted: a TOML "
                      "config file (configs/tiny.toml, ...)",
                      sweep_file.string(), base));
    return given;
  }
  const fs::path beside = sweep_file.parent_path() / given;
  if (user_file_exists(beside)) return beside;
  if (user_file_exists(given)) return given;
  throw ConfigError(fmt::format(
      "{}: base config '{}' not found (tried '{}' and '{}'); accepted: a "
      "TOML config file, relative to the sweep file or the current "
      "folder",
      sweep_file.string(), base, beside.string(), (fs::current_path() / given).string()));
}

// Run-name component for one grid value.
std::string component(const std::string& key, const std::string& label, const std::string& value) {
  if (key == "model.pe" || key == "task.name") return sanitize(value);
  if (key == "train.seed") return fmt::format("s{}", sanitize(value));
  return fmt::format("{}={}", label, sanitize(value));
}

}  // namespace

SweepSpec parse_sweep_file(const fs::path& file) {
  const std::string where = file.string();
  if (!user_file_exists(file))
    throw ConfigError(
        fmt::format("sweep file '{}' does not exist; accepted: a TOML sweep file "
                    "(configs/sweeps/*.toml)",
                    where));
  toml::table table;
  try {
    table = toml::parse_file(file.string());
  } catch (const toml::parse_error& e) {
    throw ConfigError(fmt::format("{}: TOML syntax error at line {}: {}", where,
                                  e.source().begin.line, e.description()));
  }
  for (const auto& [k, node] : table) {
    const std::string key(k.str());
    if (std::find(kTopLevelKeys.begin(), kTopLevelKeys.end(), key) != kTopLevelKeys.end()) continue;
    std::string msg = fmt::format("{}: unknown key '{}'", where, key);
    const std::string near = nearest(key, kTopLevelKeys);
    if (!near.empty()) msg += fmt::format(" (did you mean '{}'?)", near);
    throw ConfigError(msg + "; accepted: name, base, setup, out, store, [set], [grid]");
  }

  SweepSpec spec;
  spec.source = where;
  spec.name = string_field(table, "name", where);
  if (!valid_name(spec.name))
    throw ConfigError(
        fmt::format("{}: name: bad value '{}'; accepted: a non-empty name of "
                    "letters, digits, '_', '-' and '.'",
                    where, spec.name));
  spec.setup = string_field(table, "setup", where);
  const std::string base = string_field(table, "base", where);
  if (!base.empty()) spec.base_config = resolve_base(base, file);
  const std::string out = string_field(table, "out", where);
  spec.out_dir = out.empty() ? fs::path("runs") / spec.name : fs::path(out);
  const std::string store = string_field(table, "store", where);
  spec.store_path = store.empty() ? fs::path(kDefaultStorePath) : fs::path(store);

  std::vector<std::pair<std::string, const toml::node*>> leaves;
  if (const toml::node* set = table.get("set")) {
    if (!set->is_table())
      throw ConfigError(fmt::format("{}: [set] must be a table of key = value", where));
    flatten(*set->as_table(), "", leaves);
    for (const auto& [key, node] : leaves)
      spec.fixed_overrides.push_back(key + "=" + leaf_text(where + ": set." + key, *node));
  }
  leaves.clear();
  if (const toml::node* grid = table.get("grid")) {
    if (!grid->is_table())
      throw ConfigError(fmt::format("{}: [grid] must be a table of key = [values]", where));
    flatten(*grid->as_table(), "", leaves);
  }
  for (const auto& [key, node] : leaves) {
    const auto* array = node->as_array();
    if (!array || array->empty())
      throw ConfigError(
          fmt::format("{}: grid.{}: expected a non-empty list of values, e.g. "
                      "[\"nope\", \"rope\"]; a single fixed value goes in [set]",
                      where, key));
    std::vector<std::string> values;
    for (const auto& v : *array) {
      values.push_back(leaf_text(fmt::format("{}: grid.{}", where, key), v));
      if (std::count(values.begin(), values.end(), values.back()) > 1)
        throw ConfigError(
            fmt::format("{}: grid.{}: value '{}' is listed twice", where, key, values.back()));
    }
    spec.grid.emplace_back(key, std::move(values));
  }
  // Run names read pe, task, the other keys, then the seed.
  auto rank = [](const std::string& key) {
    return key == "model.pe" ? 0 : key == "task.name" ? 1 : key == "train.seed" ? 3 : 2;
  };
  std::stable_sort(spec.grid.begin(), spec.grid.end(),
                   [&](const auto& a, const auto& b) { return rank(a.first) < rank(b.first); });
  return spec;
}

std::vector<SweepRun> expand_sweep(const SweepSpec& spec, int64_t threads_per_worker) {
  const std::string where = spec.source.empty() ? "sweep " + spec.name : spec.source;
  if (!valid_name(spec.name))
    throw ConfigError(
        fmt::format("{}: name: bad value '{}'; accepted: a non-empty name of "
                    "letters, digits, '_', '-' and '.'",
                    where, spec.name));
  uint64_t grid_runs = 1;
  for (const auto& [key, values] : spec.grid)
    if (__builtin_mul_overflow(grid_runs, values.size(), &grid_runs) || grid_runs > kMaxSweepRuns)
      throw ConfigError(
          fmt::format("{}: the grid gives more than {} runs (grid.{} has {} values); "
                      "accepted: a grid of at most {} runs",
                      where, kMaxSweepRuns, key, values.size(), kMaxSweepRuns));
  // Short labels for the run names: the key's last segment, or the whole key if two collide.
  std::map<std::string, int> segment_uses;
  auto last_segment = [](const std::string& key) { return key.substr(key.rfind('.') + 1); };
  for (const auto& [key, values] : spec.grid) ++segment_uses[last_segment(key)];
  bool sets_threads = false;
  for (const auto& o : spec.fixed_overrides) sets_threads |= o.rfind("train.threads=", 0) == 0;
  for (const auto& [key, values] : spec.grid) sets_threads |= key == "train.threads";

  std::vector<SweepRun> runs;
  std::set<std::string> names;
  std::vector<size_t> index(spec.grid.size(), 0);
  auto skipped = [&spec](const std::vector<std::string>& point) {
    return std::any_of(spec.skip.begin(), spec.skip.end(), [&point](const auto& entry) {
      return std::all_of(entry.begin(), entry.end(), [&point](const std::string& o) {
        return std::find(point.begin(), point.end(), o) != point.end();
      });
    });
  };
  // Next grid point, last key fastest; false after the last one.
  auto advance = [&spec, &index] {
    for (size_t k = spec.grid.size(); k > 0;) {
      --k;
      if (++index[k] < spec.grid[k].second.size()) return true;
      index[k] = 0;
    }
    return false;
  };
  for (;;) {
    std::vector<std::string> point;
    for (size_t k = 0; k < spec.grid.size(); ++k)
      point.push_back(spec.grid[k].first + "=" + spec.grid[k].second[index[k]]);
    if (skipped(point)) {
      if (!advance()) return runs;
      continue;
    }
    SweepRun run;
    std::vector<std::string> parts;
    run.overrides = spec.fixed_overrides;
    if (!sets_threads) run.overrides.push_back(fmt::format("train.threads={}", threads_per_worker));
    for (size_t k = 0; k < spec.grid.size(); ++k) {
      const auto& [key, values] = spec.grid[k];
      const std::string& value = values[index[k]];
      run.overrides.push_back(point[k]);
      const std::string label = segment_uses[last_segment(key)] > 1 ? key : last_segment(key);
      parts.push_back(component(key, label, value));
    }
    run.name = parts.empty() ? "base" : fmt::format("{}", fmt::join(parts, "-"));
    run.store_name = spec.name + "/" + run.name;
    run.run_dir = spec.out_dir / run.name;
    if (!names.insert(run.name).second)
      throw ConfigError(
          fmt::format("{}: two runs get the name '{}' (grid values that differ only "
                      "in characters a folder name cannot hold); accepted: values "
                      "that stay distinct after replacing those with '_'",
                      where, run.name));
    try {
      run.config = load_config(spec.base_config, run.overrides);
      // The generators check their own parameters (sequence fits, ranges); two samples suffice.
      TaskConfig probe = run.config.task;
      probe.samples = 2;
      generate_task(probe);
    } catch (const ConfigError& e) {
      throw ConfigError(fmt::format("{}: run '{}' ({}): {}", where, run.name,
                                    fmt::join(run.overrides, " "), e.what()));
    }
    runs.push_back(std::move(run));
    if (!advance()) return runs;
  }
}

}  // namespace pelab
