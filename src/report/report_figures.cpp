#include "report/report_figures.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <sstream>
#include <stdexcept>
#include <string_view>

#include "report/gnuplot.h"
#include "report/heatmap.h"

namespace pelab {
namespace fs = std::filesystem;

namespace {

// gnuplot's SVG terminal reads titles as enhanced text, where "_" starts a subscript: escape the
// control characters so "rope_abs" and "p_i" print as written.
std::string literal(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (std::string_view("_^{}@&~").find(c) != std::string_view::npos) out += '\\';
    out += c;
  }
  return out;
}

std::string task_title(const std::string& task) {
  return task == kTask1 ? "Task 1 (distance)" : task == kTask2 ? "Task 2 (count)" : task;
}

// The k-heads cells of one setup, by k, with "all heads" last at x = n_heads.
std::vector<std::pair<double, const Cell*>> rotary_head_points(const ReportData& data,
                                                               const std::string& setup) {
  std::vector<std::pair<double, const Cell*>> points;
  bool partial = false;
  for (const auto& c : data.cells)
    if (c.setup == setup && c.pe == "rope" && c.task == kTask1 && c.rotary_heads >= 0 &&
        c.final_accuracy.measured()) {
      points.emplace_back(double(c.rotary_heads), &c);
      partial = true;
    }
  const Cell* full = data.find(setup, "rope", kTask1, -1);
  if (partial && full && full->final_accuracy.measured())
    points.emplace_back(double(full->n_heads), full);
  std::sort(points.begin(), points.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  return points;
}

}  // namespace

void write_accuracy_bars_svg(const fs::path& svg, const ReportData& data, const std::string& setup,
                             const std::vector<std::string>& pes) {
  auto measured = [&](const std::string& pe, const std::string& task) {
    const Cell* c = data.find(setup, pe, task);
    return c && c->final_accuracy.measured() ? c : nullptr;
  };
  // Only tasks and PEs with a number: gnuplot refuses a histogram column with no valid point.
  std::vector<std::string> tasks, shown;
  for (const std::string task : {kTask1, kTask2})
    if (std::any_of(pes.begin(), pes.end(), [&](auto& pe) { return measured(pe, task); }))
      tasks.push_back(task);
  for (const auto& pe : pes)
    if (std::any_of(tasks.begin(), tasks.end(), [&](auto& task) { return measured(pe, task); }))
      shown.push_back(pe);
  if (tasks.empty()) throw std::runtime_error("no finished runs in this setup");
  GnuplotFigure figure(svg);
  std::ostringstream rows;
  rows.precision(9);
  for (const auto& pe : shown) {
    rows << pe;
    for (const auto& task : tasks) {
      // gnuplot skips "NaN" cells: a missing bar, not a zero one.
      const Cell* c = measured(pe, task);
      rows << ' ' << (c ? fmt::format("{}", c->final_accuracy.mean) : "NaN") << ' '
           << (c ? fmt::format("{}", c->final_accuracy.std) : "NaN");
    }
    rows << '\n';
  }
  const std::string file = figure.data_file("bars.dat", rows.str());
  std::string gp = figure.terminal(760, 400);
  gp += "set title " +
        gnuplot_quoted(literal(fmt::format("Final test accuracy ({} setup)", setup))) + "\n";
  gp += "set ylabel 'test accuracy (mean, bar = std)'\nset yrange [0:1.05]\n";
  gp += "set style data histograms\nset style histogram errorbars gap 2 lw 1\n";
  gp += "set style fill solid 0.8 border -1\nset key outside top center horizontal\n";
  gp += "set grid ytics\nset xtics noenhanced\n";
  std::string plot = "plot ";
  for (size_t t = 0; t < tasks.size(); ++t)
    plot += fmt::format("{}{} using {}:{}{} title {}", t ? ", " : "", t ? "''" : file, 2 + 2 * t,
                        3 + 2 * t, t ? "" : ":xtic(1)", gnuplot_quoted(task_title(tasks[t])));
  figure.draw(gp + plot + "\n");
}

void write_training_curves_svg(const fs::path& svg, const ReportData& data,
                               const std::string& setup, const std::string& task,
                               const std::vector<std::string>& pes) {
  std::vector<LineSeries> series;
  for (const auto& pe : pes) {
    const Cell* c = data.find(setup, pe, task);
    if (!c || c->curve_mean.empty()) continue;
    LineSeries s;
    s.title = literal(fmt::format("{} (n={})", pe, c->run_ids.size()));
    for (size_t e = 0; e < c->curve_mean.size(); ++e) s.x.push_back(double(e + 1));
    s.y = c->curve_mean;
    s.error = c->curve_std;
    series.push_back(std::move(s));
  }
  write_line_plot_svg(
      svg, series,
      {literal(fmt::format("Test accuracy per epoch, {} ({} setup)", task_title(task), setup)),
       "epoch", "test accuracy (mean over seeds)"});
}

void write_ablation_svg(const fs::path& svg, const Cell& cell, const HeadAblation& a) {
  const int64_t rows = int64_t(a.accuracy.size());
  const int64_t cols = rows ? int64_t(a.accuracy[0].size()) : 0;
  auto matrix = torch::zeros({rows, cols}, torch::kDouble);
  for (int64_t l = 0; l < rows; ++l)
    for (int64_t h = 0; h < cols && h < int64_t(a.accuracy[l].size()); ++h)
      matrix[l][h] = a.accuracy[l][h];
  write_heatmap_svg(svg, matrix,
                    {literal(fmt::format("{}, {}, seed {}, {}: accuracy without each head "
                                         "(baseline {:.3f})",
                                         cell.pe, task_title(cell.task), a.seed, cell.setup,
                                         a.baseline_accuracy)),
                     "head", "layer (0 = first)", "accuracy"});
}

bool has_rotary_heads(const ReportData& data) {
  for (const auto& setup : data.setups)
    if (!rotary_head_points(data, setup).empty()) return true;
  return false;
}

void write_rotary_heads_svg(const fs::path& svg, const ReportData& data) {
  std::vector<LineSeries> series;
  for (const auto& setup : data.setups) {
    const auto points = rotary_head_points(data, setup);
    if (points.empty()) continue;
    LineSeries s;
    s.title = literal(setup);
    for (const auto& [k, c] : points) {
      s.x.push_back(k);
      s.y.push_back(c->final_accuracy.mean);
      s.error.push_back(c->final_accuracy.std);
    }
    series.push_back(std::move(s));
  }
  write_line_plot_svg(svg, series,
                      {"RoPE on the first k heads (Task 1): final test accuracy",
                       "rotary heads k (the rest NoPE; rightmost = all heads)",
                       "test accuracy (mean, error bar = std)"});
}

void write_kernel_eigenvalues_svg(const fs::path& svg, const SpectrumData& study) {
  constexpr size_t kMaxKernels = 6;
  std::vector<LineSeries> series;
  for (const auto& k : study.kernels) {
    if (series.size() == kMaxKernels) break;
    if (k.eigenvalues.empty()) continue;
    LineSeries s;
    s.title = literal(k.name == "E" ? fmt::format("E(t={})", k.index)
                                    : fmt::format("{} layer {} #{}", k.name, k.layer + 1, k.index));
    s.y = k.eigenvalues;
    for (size_t i = 0; i < s.y.size(); ++i) s.x.push_back(double(i));
    series.push_back(std::move(s));
  }
  if (series.empty()) throw std::runtime_error("the study holds no kernel eigenvalues");
  write_line_plot_svg(svg, series,
                      {literal(fmt::format("{} kernels ({} setup, n = {}): eigenvalues, ascending",
                                           study.pe, study.setup, study.positions)),
                       "index", "eigenvalue"});
}

bool has_contraction_ratios(const ReportData& data, const std::string& setup) {
  for (const auto& s : data.spectra)
    if (s.setup == setup)
      for (const auto& c : s.checks)
        if (c.contraction_ratio && *c.contraction_ratio > 0) return true;
  return false;
}

void write_contraction_ratios_svg(const fs::path& svg, const ReportData& data,
                                  const std::string& setup) {
  std::vector<LineSeries> series;
  for (const auto& s : data.spectra) {
    if (s.setup != setup) continue;
    std::vector<double> ratios;
    std::string kind;
    for (const auto& c : s.checks)
      if (c.contraction_ratio && *c.contraction_ratio > 0) {
        ratios.push_back(*c.contraction_ratio);
        kind = c.kind;
      }
    if (ratios.empty()) continue;
    std::sort(ratios.begin(), ratios.end());
    LineSeries line;
    line.title = literal(fmt::format("{} {} ({})", s.pe, s.run_id ? "trained" : "random A", kind));
    for (size_t i = 0; i < ratios.size(); ++i)
      line.x.push_back(ratios.size() > 1 ? double(i) / double(ratios.size() - 1) : 0.0);
    line.y = ratios;
    series.push_back(std::move(line));
  }
  write_line_plot_svg(
      svg, series,
      {literal(fmt::format(
           "Contraction ratio kappa(coupled) / kappa(A), sorted ({}); < 1: contracts", setup)),
       "share of checks", "contraction ratio", true});
}

void write_removal_svg(const fs::path& svg, const Cell& cell) {
  LineSeries position{literal("p_i removed"), {}, {}, {}},
      random{"random vector removed", {}, {}, {}};
  LineSeries baseline{"intact model", {}, {}, {}};
  size_t layers = 0;
  for (const auto& r : cell.removals) layers = std::max(layers, r.layers.size());
  for (size_t l = 0; l < layers; ++l) {
    std::vector<double> without, randoms, baselines;
    for (const auto& r : cell.removals) {
      if (l >= r.layers.size()) continue;
      without.push_back(r.layers[l].accuracy_without_position);
      baselines.push_back(r.baseline_accuracy);
      const auto& each = r.layers[l].accuracy_without_random;
      if (each.empty()) randoms.push_back(r.layers[l].random_mean);
      randoms.insert(randoms.end(), each.begin(), each.end());
    }
    const auto p = SeedStats::of(without), q = SeedStats::of(randoms);
    const double x = double(l + 1);
    position.x.push_back(x);
    position.y.push_back(p.mean);
    position.error.push_back(p.std);
    random.x.push_back(x);
    random.y.push_back(q.mean);
    random.error.push_back(q.std);
    baseline.x.push_back(x);
    baseline.y.push_back(SeedStats::of(baselines).mean);
  }
  write_line_plot_svg(
      svg, {position, random, baseline},
      {literal(fmt::format("Removing p_i vs a random vector: {}, {}, {}, {} seeds", cell.pe,
                           task_title(cell.task), cell.setup, cell.removals.size())),
       "layer (1 = first)", "test accuracy (error bar = std)"});
}

}  // namespace pelab
