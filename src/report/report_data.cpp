#include "report/report_data.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "config/config.h"
#include "report/convergence.h"

namespace pelab {

namespace {

using nlohmann::json;

// "<scale>-<setup>-<experiment>" -> its parts; missing parts are "".
struct SweepName {
  std::string scale, setup, experiment;
};
SweepName parse_sweep(const std::string& sweep) {
  // From the right: setups and experiments have no '-', a scale may ("paper-shape").
  SweepName out;
  const auto last = sweep.rfind('-');
  if (last == std::string::npos || last == 0) {
    out.scale = sweep;
    return out;
  }
  const auto middle = sweep.rfind('-', last - 1);
  if (middle == std::string::npos) {
    out.scale = sweep.substr(0, last);
    out.setup = sweep.substr(last + 1);
    return out;
  }
  out.scale = sweep.substr(0, middle);
  out.setup = sweep.substr(middle + 1, last - middle - 1);
  out.experiment = sweep.substr(last + 1);
  return out;
}

int64_t label_count(const TaskConfig& task) {
  if (task.name == "distance") return task.distance_between_max - task.distance_between_min + 1;
  if (task.name == "count") return task.count_max - task.count_min + 1;
  return 0;
}

// Only the RoPE family reads model.rotary_heads, and "as many as there are heads" is "all".
int64_t normalised_rotary_heads(const ModelConfig& model) {
  const bool rotary = model.pe == "rope" || model.pe == "rope_abs";
  if (!rotary || model.rotary_heads < 0 || model.rotary_heads >= model.n_heads) return -1;
  return model.rotary_heads;
}

std::optional<double> optional_number(const json& j, const char* key) {
  if (!j.contains(key) || !j[key].is_number()) return std::nullopt;
  return j[key].get<double>();
}

std::vector<LayerDeposit> deposits_from(const AblationRecord& a) {
  // The contract is the bare array; the full ablation_to_json object is accepted too.
  const json& list =
      a.extra.is_object() && a.extra.contains("deposits") ? a.extra["deposits"] : a.extra;
  std::vector<LayerDeposit> out;
  if (list.is_array() && !list.empty()) {
    for (const auto& d : list) {
      LayerDeposit ld;
      ld.layer = d.value("layer", int64_t{0});
      ld.worst_head = d.value("worst_head", int64_t{0});
      ld.drop = d.value("drop", 0.0);
      ld.share = d.value("share", 0.0);
      ld.single_head_deposit = d.value("single_head_deposit", false);
      out.push_back(ld);
    }
    return out;
  }
  // No summary stored: apply the same rule to the matrix.
  if (a.accuracy.empty() || a.accuracy[0].empty()) return out;
  auto matrix =
      torch::zeros({int64_t(a.accuracy.size()), int64_t(a.accuracy[0].size())}, torch::kDouble);
  for (size_t l = 0; l < a.accuracy.size(); ++l)
    for (size_t h = 0; h < a.accuracy[l].size() && h < a.accuracy[0].size(); ++h)
      matrix[l][h] = a.accuracy[l][h];
  return summarise_deposits(a.baseline_accuracy, matrix);
}

PositionRemoval removal_from(const ResultRecord& r, int64_t seed) {
  const json& p = r.payload;
  PositionRemoval out;
  out.run_id = r.run_id.value_or(0);
  out.seed = seed;
  out.split = p.value("split", r.key);
  out.samples = p.value("samples", int64_t{0});
  out.baseline_accuracy = p.value("baseline_accuracy", 0.0);
  for (const auto& l : p.value("layers", json::array())) {
    RemovalLayer layer;
    layer.layer = l.value("layer", int64_t{0});
    layer.accuracy_without_position = l.value("accuracy_without_position", 0.0);
    layer.accuracy_without_random = l.value("accuracy_without_random", std::vector<double>{});
    layer.random_mean = l.value("random_mean", 0.0);
    layer.random_std = l.value("random_std", 0.0);
    out.layers.push_back(layer);
  }
  return out;
}

SpectrumData spectrum_from(const json& p) {
  SpectrumData s;
  s.pe = p.value("pe", std::string());
  s.positions = p.value("positions", int64_t{0});
  for (const auto& k : p.value("kernels", json::array())) {
    KernelEigenvalues e;
    e.name = k.value("name", std::string());
    e.layer = k.value("layer", int64_t{0});
    e.index = k.value("index", int64_t{0});
    e.eigenvalues = k.value("eigenvalues", std::vector<double>{});
    e.condition_number = optional_number(k, "condition_number");
    e.min_diagonal = k.value("min_diagonal", 0.0);
    e.max_diagonal = k.value("max_diagonal", 0.0);
    s.kernels.push_back(std::move(e));
  }
  for (const auto& c : p.value("coupling_checks", json::array())) {
    CouplingSummary check;
    check.source = c.value("source", std::string());
    check.kind = c.value("kind", std::string());
    check.kernel = c.value("kernel", std::string());
    check.bound_holds = c.value("bound_holds", false);
    check.condition_a = optional_number(c, "condition_a");
    check.condition_coupled = optional_number(c, "condition_coupled");
    check.contraction_ratio = optional_number(c, "contraction_ratio");
    s.checks.push_back(std::move(check));
  }
  for (const auto& l : p.value("logit_spectra", json::array())) {
    LogitSpectrum ls;
    ls.layer = l.value("layer", int64_t{0});
    ls.head = l.value("head", int64_t{0});
    ls.mean_log10_condition = l.value("mean_log10_condition", 0.0);
    ls.mean_effective_rank = l.value("mean_effective_rank", 0.0);
    ls.mean_top_share = l.value("mean_top_share", 0.0);
    s.logit_spectra.push_back(ls);
  }
  return s;
}

// faithful, standard first (the study's two setups), then the rest alphabetically.
int setup_rank(const std::string& setup) {
  return setup == "faithful" ? 0 : setup == "standard" ? 1 : 2;
}

}  // namespace

SeedStats SeedStats::of(const std::vector<double>& values) {
  SeedStats s;
  s.n = int64_t(values.size());
  if (values.empty()) return s;
  double sum = 0;
  for (double v : values) sum += v;
  s.mean = sum / double(s.n);
  double squares = 0;
  for (double v : values) squares += (v - s.mean) * (v - s.mean);
  s.std = s.n > 1 ? std::sqrt(squares / double(s.n - 1)) : 0.0;
  s.min = *std::min_element(values.begin(), values.end());
  s.max = *std::max_element(values.begin(), values.end());
  return s;
}

const Cell* ReportData::find(const std::string& setup, const std::string& pe,
                             const std::string& task, int64_t rotary_heads) const {
  for (const auto& c : cells)
    if (c.setup == setup && c.pe == pe && c.task == task && c.rotary_heads == rotary_heads)
      return &c;
  return nullptr;
}

const SpectrumData* ReportData::kernel_spectrum(const std::string& setup,
                                                const std::string& pe) const {
  for (const auto& s : spectra)
    if (!s.run_id && s.setup == setup && s.pe == pe) return &s;
  return nullptr;
}

std::vector<const SpectrumData*> ReportData::run_spectra(const std::string& setup,
                                                         const std::string& pe) const {
  std::vector<const SpectrumData*> out;
  for (const auto& s : spectra)
    if (s.run_id && s.setup == setup && s.pe == pe) out.push_back(&s);
  return out;
}

std::vector<std::string> scales_in_store(const Store& store) {
  std::set<std::string> scales;
  for (const auto& r : store.list_runs())
    if (!r.sweep.empty()) scales.insert(parse_sweep(r.sweep).scale);
  return {scales.begin(), scales.end()};
}

ReportData load_report_data(const Store& store, const std::string& scale) {
  ReportData data;
  data.scale = scale;
  data.store_path = store.path();

  std::vector<RunRecord> runs;
  for (auto& r : store.list_runs())
    if (parse_sweep(r.sweep).scale == scale && r.sweep.size() > scale.size()) runs.push_back(r);
  if (runs.empty()) {
    const auto scales = scales_in_store(store);
    throw StoreError(
        fmt::format("no runs of scale '{}' in '{}'; {} (run `pelab reproduce --scale {}` first)",
                    scale, store.path().string(),
                    scales.empty() ? std::string("the store holds no sweep runs")
                                   : fmt::format("scales present: {}", fmt::join(scales, ", ")),
                    scale));
  }

  std::map<std::string, size_t> cell_index;              // "setup|pe|task|k" -> index in data.cells
  std::set<std::pair<std::string, int64_t>> seen_seeds;  // (cell key, seed)
  std::map<std::string, SetupSummary> summaries;
  std::map<int64_t, std::pair<size_t, int64_t>> run_cell;  // run id -> (cell, seed)
  std::map<size_t, std::vector<std::vector<double>>> cell_curves;
  std::map<size_t, std::vector<double>> cell_speed;  // samples to kSpeedShare, per run
  for (const auto& r : runs) {
    Config config;
    try {
      config = config_from_toml(r.config_toml, r.name);
    } catch (const ConfigError& e) {
      data.warnings.push_back(fmt::format("run '{}' skipped: {}", r.name, e.what()));
      continue;
    }
    const std::string setup = r.setup.empty() ? parse_sweep(r.sweep).setup : r.setup;
    auto& summary = summaries[setup];
    summary.setup = setup;
    ++summary.runs;
    ++summary.runs_by_experiment[parse_sweep(r.sweep).experiment];
    summary.train_seconds += r.train_seconds;
    const bool finished = r.status == RunStatus::kFinished && r.final_test_accuracy.has_value();
    summary.finished += finished;
    summary.failed += r.status == RunStatus::kFailed;
    summary.unfinished += !finished && r.status != RunStatus::kFailed;
    if (summary.config_toml.empty() ||
        (config.model.pe == "rope" && parse_sweep(r.sweep).experiment == "main"))
      summary.config_toml = r.config_toml;

    const int64_t k = normalised_rotary_heads(config.model);
    const std::string key = fmt::format("{}|{}|{}|{}", setup, config.model.pe, config.task.name, k);
    auto [it, inserted] = cell_index.emplace(key, data.cells.size());
    if (inserted) {
      Cell cell;
      cell.setup = setup;
      cell.pe = config.model.pe;
      cell.task = config.task.name;
      cell.rotary_heads = k;
      cell.n_heads = config.model.n_heads;
      cell.n_layers = config.model.n_layers;
      cell.label_count = label_count(config.task);
      data.cells.push_back(cell);
    }
    Cell& cell = data.cells[it->second];
    if (!finished) {
      ++cell.unfinished_runs;
      continue;
    }
    // One seed of one configuration counts once: the k-heads sweep's "all heads" runs repeat
    // the main RoPE runs (whether written as k = -1 or k = n_heads).
    if (!seen_seeds.emplace(key, r.seed).second) continue;
    cell.run_ids.push_back(r.id);
    cell.seeds.push_back(r.seed);
    run_cell[r.id] = {it->second, r.seed};
    const auto metrics = store.metrics(r.id);
    std::vector<double> curve;
    for (const auto& m : metrics) curve.push_back(m.test_accuracy);
    cell_curves[it->second].push_back(curve);
    const RunConvergence convergence = run_convergence(r, metrics, config);
    cell.epochs_trained.push_back(convergence.epochs);
    cell.stop_reasons.push_back(convergence.stop_reason);
    cell.samples_per_epoch = samples_per_epoch(config);
    cell.length_only_accuracy = length_only_accuracy(config.task);
    const int64_t epochs_to_share =
        first_epoch_reaching(curve, kSpeedShare * *r.final_test_accuracy);
    if (epochs_to_share > 0)
      cell_speed[it->second].push_back(double(epochs_to_share * cell.samples_per_epoch));
  }

  for (size_t i = 0; i < data.cells.size(); ++i) {
    Cell& cell = data.cells[i];
    std::vector<double> finals, curve_means;
    for (int64_t id : cell.run_ids) {
      const auto run = std::find_if(runs.begin(), runs.end(), [&](auto& r) { return r.id == id; });
      finals.push_back(*run->final_test_accuracy);
    }
    cell.final_accuracy = SeedStats::of(finals);
    const auto& curves = cell_curves[i];
    size_t epochs = 0;
    for (const auto& c : curves) {
      epochs = std::max(epochs, c.size());
      if (!c.empty()) curve_means.push_back(SeedStats::of(c).mean);
    }
    cell.curve_accuracy = SeedStats::of(curve_means);
    cell.samples_to_share = SeedStats::of(cell_speed[i]);
    for (size_t e = 0; e < epochs; ++e) {
      std::vector<double> at_epoch;
      for (const auto& c : curves)
        if (e < c.size()) at_epoch.push_back(c[e]);
      const auto s = SeedStats::of(at_epoch);
      cell.curve_mean.push_back(s.mean);
      cell.curve_std.push_back(s.std);
    }
  }

  // Ablations and removals, attached to their run's cell, by seed.
  for (const auto& [run_id, place] : run_cell) {
    Cell& cell = data.cells[place.first];
    const auto ablations = store.ablations(run_id);
    const auto chosen = std::find_if(ablations.begin(), ablations.end(),
                                     [](const auto& a) { return a.method == "value"; });
    if (chosen != ablations.end() || !ablations.empty()) {
      const AblationRecord& a = chosen != ablations.end() ? *chosen : ablations.front();
      cell.ablations.push_back({run_id, place.second, a.method, a.split, a.baseline_accuracy,
                                a.accuracy, deposits_from(a)});
    }
    const auto removals = store.results("removal", run_id);
    if (!removals.empty()) {
      // One split per run; prefer the test split when both are stored.
      const auto test = std::find_if(removals.begin(), removals.end(),
                                     [](const auto& r) { return r.key == "test"; });
      cell.removals.push_back(
          removal_from(test != removals.end() ? *test : removals.front(), place.second));
    }
  }
  for (Cell& cell : data.cells) {
    auto by_seed = [](const auto& a, const auto& b) { return a.seed < b.seed; };
    std::sort(cell.ablations.begin(), cell.ablations.end(), by_seed);
    std::sort(cell.removals.begin(), cell.removals.end(), by_seed);
  }

  // Spectra: kernel studies (any scale: they depend on the PE only) and this scale's runs.
  for (const auto& r : store.results("kernel_spectrum")) {
    const auto slash = r.key.find('/');
    SpectrumData s = spectrum_from(r.payload);
    s.setup = r.key.substr(0, slash);
    if (slash != std::string::npos) s.pe = r.key.substr(slash + 1);
    data.spectra.push_back(std::move(s));
  }
  for (const auto& r : store.results("run_spectrum")) {
    if (!r.run_id || !run_cell.count(*r.run_id)) continue;
    const Cell& cell = data.cells[run_cell[*r.run_id].first];
    SpectrumData s = spectrum_from(r.payload);
    s.setup = cell.setup;
    s.pe = cell.pe;
    s.run_id = r.run_id;
    data.spectra.push_back(std::move(s));
  }

  for (auto& [setup, summary] : summaries) {
    data.setups.push_back(setup);
    data.setup_summaries.push_back(summary);
  }
  auto by_rank = [](const std::string& a, const std::string& b) {
    return std::pair(setup_rank(a), a) < std::pair(setup_rank(b), b);
  };
  std::sort(data.setups.begin(), data.setups.end(), by_rank);
  std::sort(data.setup_summaries.begin(), data.setup_summaries.end(),
            [&](const auto& a, const auto& b) { return by_rank(a.setup, b.setup); });
  return data;
}

}  // namespace pelab
