// The length figure and the report's length and probe sections (length_section.h).
#include "report/length_section.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <map>
#include <numeric>
#include <set>
#include <sstream>

#include "report/gnuplot.h"
#include "report/heatmap.h"
#include "store/store.h"
#include "tasks/task.h"

namespace pelab {
namespace fs = std::filesystem;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kLearnedAccuracy = 0.5;  // runs below this at 1x did not learn the task
constexpr double kKeptMargin = 0.05;      // "poor": at least this much less accuracy kept
constexpr double kRankThreshold = -0.3;   // and a rank correlation at least this negative
constexpr int64_t kMinGroup = 3;          // runs per group for any verdict

std::string num(double v, int digits = 3) {
  return std::isfinite(v) ? fmt::format("{:.{}f}", v, digits) : "&ndash;";
}

std::string mean_std(const std::vector<double>& values) {
  std::vector<double> finite;
  for (double v : values)
    if (std::isfinite(v)) finite.push_back(v);
  if (finite.empty()) return "&ndash;";
  const SeedStats s = SeedStats::of(finite);
  return finite.size() > 1 ? fmt::format("{:.3f} &plusmn; {:.3f}", s.mean, s.std)
                           : fmt::format("{:.3f}", s.mean);
}

double mean_of(const std::vector<double>& v) {
  return v.empty() ? kNaN : std::accumulate(v.begin(), v.end(), 0.0) / double(v.size());
}

std::vector<double> ranks(const std::vector<double>& v) {
  std::vector<size_t> order(v.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return v[a] < v[b]; });
  std::vector<double> r(v.size());
  for (size_t i = 0; i < order.size();) {
    size_t j = i;
    while (j + 1 < order.size() && v[order[j + 1]] == v[order[i]]) ++j;
    for (size_t k = i; k <= j; ++k) r[order[k]] = 0.5 * double(i + j);  // mean rank of the tie
    i = j + 1;
  }
  return r;
}

// Scatter of (x, y) points, one series per name.
void write_scatter_svg(const fs::path& svg,
                       const std::map<std::string, std::vector<std::pair<double, double>>>& series,
                       const std::string& title, const std::string& x_label,
                       const std::string& y_label) {
  GnuplotFigure figure(svg);
  std::string gp = figure.terminal(720, 440);
  gp += "set title " + gnuplot_quoted(title) + "\nset xlabel " + gnuplot_quoted(x_label) +
        "\nset ylabel " + gnuplot_quoted(y_label) + "\nset key outside right\nset grid\n" +
        "set xrange [0:1.05]\n";
  std::string plot = "plot ";
  size_t i = 0;
  for (const auto& [name, points] : series) {
    std::ostringstream data;
    data.precision(9);
    for (const auto& [x, y] : points) data << x << ' ' << y << '\n';
    const std::string file = figure.data_file(fmt::format("points{}.dat", i), data.str());
    plot += (i++ ? ", " : "") + file + " using 1:2 with points pt 7 ps 1.2 title " +
            gnuplot_quoted(name);
  }
  figure.draw(gp + plot + "\n");
}

void add_figure(std::string& html, const fs::path& out_dir, ReportFiles& files,
                const std::string& file, const std::string& caption,
                const std::function<void(const fs::path&)>& draw) {
  try {
    draw(out_dir / file);
    files.figures.push_back(out_dir / file);
    html +=
        fmt::format("<figure><img src=\"{0}\" alt=\"{1}\"><figcaption>{1}</figcaption></figure>\n",
                    html_escaped(file), html_escaped(caption));
  } catch (const std::exception& e) {
    files.figure_errors.push_back(file + ": " + e.what());
    html += fmt::format("<p class=\"missing\">Figure {} not drawn: {}</p>\n", html_escaped(file),
                        html_escaped(e.what()));
  }
}

std::string verdict_html(Verdict v) {
  std::string cls = verdict_name(v);
  std::replace(cls.begin(), cls.end(), ' ', '-');
  return fmt::format("<span class=\"verdict {}\">{}</span>", cls, verdict_name(v));
}

bool is_probe(const std::string& task) { return task != "distance" && task != "count"; }

}  // namespace

void write_length_figure(const fs::path& svg,
                         const std::vector<std::pair<std::string, LengthResult>>& results,
                         const std::string& title) {
  std::vector<LineSeries> series;
  for (const auto& [name, r] : results) {
    LineSeries s{name, {}, {}, {}};
    for (const auto& p : r.points) {
      s.x.push_back(double(p.length));
      s.y.push_back(p.accuracy);
    }
    series.push_back(std::move(s));
  }
  write_line_plot_svg(svg, series, {title, "evaluation length (tokens)", "accuracy"});
}

double LengthRun::kept(double factor) const {
  double base = kNaN, at = kNaN;
  for (const auto& p : lengths.points) {
    const double f = double(p.length) / double(lengths.train_length);
    if (std::abs(f - 1.0) < 1e-9) base = p.accuracy;
    if (std::abs(f - factor) < 0.02) at = p.accuracy;
  }
  return std::isfinite(base) && base > 0 ? at / base : kNaN;
}

double spearman_correlation(const std::vector<double>& x, const std::vector<double>& y) {
  if (x.size() != y.size() || x.size() < 3) return kNaN;
  const auto rx = ranks(x), ry = ranks(y);
  const double mx = mean_of(rx), my = mean_of(ry);
  double sxy = 0, sxx = 0, syy = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    sxy += (rx[i] - mx) * (ry[i] - my);
    sxx += (rx[i] - mx) * (rx[i] - mx);
    syy += (ry[i] - my) * (ry[i] - my);
  }
  return sxx > 0 && syy > 0 ? sxy / std::sqrt(sxx * syy) : kNaN;
}

DepositLengthVerdict deposit_length_verdict(const std::vector<LengthRun>& runs) {
  DepositLengthVerdict v;
  v.rule = fmt::format(
      "Runs with a head ablation and an accuracy >= {} at the training length. Kept = accuracy "
      "at 2x / accuracy at 1x. Holds when the runs whose layer 1 is a single-head deposit keep "
      "at least {} less on average than the others and Spearman's rho(layer-1 share, kept) <= "
      "{}; does not hold when they keep as much or more or rho >= 0; mixed otherwise; not "
      "measured with fewer than {} runs in either group.",
      kLearnedAccuracy, kKeptMargin, kRankThreshold, kMinGroup);
  std::vector<double> with, without, shares, kept_all;
  for (const auto& r : runs) {
    if (!r.has_ablation || r.lengths.points.empty()) continue;
    const double base = r.lengths.points.front().accuracy;
    const double kept = r.kept(2.0);
    if (base < kLearnedAccuracy || !std::isfinite(kept)) continue;
    (r.layer1_single_head ? with : without).push_back(kept);
    shares.push_back(r.layer1_share);
    kept_all.push_back(kept);
  }
  v.with_deposit = int64_t(with.size());
  v.without_deposit = int64_t(without.size());
  v.kept_with = mean_of(with);
  v.kept_without = mean_of(without);
  v.spearman = spearman_correlation(shares, kept_all);
  v.evidence = fmt::format(
      "{} runs with a layer-1 single-head deposit keep {} at 2x; {} without keep {}; rho = {}",
      v.with_deposit, num(v.kept_with), v.without_deposit, num(v.kept_without), num(v.spearman, 2));
  if (v.with_deposit < kMinGroup || v.without_deposit < kMinGroup) return v;
  const double gap = v.kept_without - v.kept_with;
  if (gap >= kKeptMargin && v.spearman <= kRankThreshold)
    v.verdict = Verdict::kHolds;
  else if (gap <= 0 || !(v.spearman < 0))
    v.verdict = Verdict::kDoesNotHold;
  else
    v.verdict = Verdict::kMixed;
  return v;
}

std::vector<LengthRun> load_length_runs(const ReportData& data) {
  std::vector<LengthRun> out;
  if (data.store_path.empty() || !fs::exists(data.store_path)) return out;
  Store store(data.store_path, Store::Mode::kExisting);
  for (const auto& cell : data.cells) {
    for (size_t i = 0; i < cell.run_ids.size(); ++i) {
      const auto results = store.results("length_generalization", cell.run_ids[i]);
      if (results.empty()) continue;
      LengthRun r;
      r.setup = cell.setup;
      r.pe = cell.pe;
      r.task = cell.task;
      r.run_id = cell.run_ids[i];
      r.seed = cell.seeds[i];
      r.lengths = length_result_from_json(results.front().payload);
      for (const auto& a : cell.ablations) {
        if (a.run_id != r.run_id || a.deposits.empty()) continue;
        r.has_ablation = true;
        r.layer1_share = a.deposits.front().share;
        r.layer1_single_head = a.deposits.front().single_head_deposit;
        for (const auto& d : a.deposits) r.any_single_head |= d.single_head_deposit;
      }
      out.push_back(std::move(r));
    }
  }
  return out;
}

std::string length_sections_html(const ReportData& data, const std::vector<LengthRun>& runs,
                                 const fs::path& out_dir, ReportFiles& files) {
  if (runs.empty()) return "";
  std::string html;
  // Factors present, in order.
  std::set<double> factor_set;
  for (const auto& r : runs)
    for (const auto& p : r.lengths.points)
      factor_set.insert(std::round(100.0 * double(p.length) / double(r.lengths.train_length)) /
                        100.0);
  const std::vector<double> factors(factor_set.begin(), factor_set.end());
  std::set<std::string> tasks;
  for (const auto& r : runs) tasks.insert(r.task);

  html +=
      "<h2 id=\"length\">Length generalization</h2>\n<p>Each run evaluated on its task "
      "regenerated at longer lengths (factor x the training length), label range unchanged, "
      "the extra length in fillers (docs/TASKS.md). Learned and relative position tables are "
      "clamped beyond their training length (positions past the table reuse its last entry). "
      "Accuracy mean &plusmn; std over seeds; kept at 2x = accuracy at 2x / accuracy at 1x.</p>\n";
  for (const auto& setup : data.setups)
    for (const auto& task : tasks) {
      std::map<std::string, std::vector<const LengthRun*>> by_pe;
      for (const auto& r : runs)
        if (r.setup == setup && r.task == task) by_pe[r.pe].push_back(&r);
      if (by_pe.empty()) continue;
      html += fmt::format("<h3>{} / {}</h3>\n<table><tr><th>PE</th>", html_escaped(setup),
                          html_escaped(task));
      for (double f : factors) html += fmt::format("<th>{}x</th>", f);
      html += "<th>kept at 2x</th><th>kept at 4x</th><th>layer-1 share</th></tr>\n";
      std::vector<LineSeries> series;
      for (const auto& [pe, list] : by_pe) {
        LineSeries s{pe, {}, {}, {}};
        html += fmt::format("<tr><td>{}</td>", html_escaped(pe));
        for (double f : factors) {
          std::vector<double> acc;
          for (const LengthRun* r : list)
            for (const auto& p : r->lengths.points)
              if (std::abs(double(p.length) / double(r->lengths.train_length) - f) < 0.02)
                acc.push_back(p.accuracy);
          html += "<td class=num>" + mean_std(acc) + "</td>";
          if (!acc.empty()) {
            const SeedStats st = SeedStats::of(acc);
            s.x.push_back(f);
            s.y.push_back(st.mean);
            s.error.push_back(st.std);
          }
        }
        std::vector<double> k2, k4, share;
        for (const LengthRun* r : list) {
          k2.push_back(r->kept(2.0));
          k4.push_back(r->kept(4.0));
          if (r->has_ablation) share.push_back(r->layer1_share);
        }
        html += "<td class=num>" + mean_std(k2) + "</td><td class=num>" + mean_std(k4) +
                "</td><td class=num>" + mean_std(share) + "</td></tr>\n";
        series.push_back(std::move(s));
      }
      html += "</table>\n";
      add_figure(html, out_dir, files, fmt::format("length-{}-{}.svg", setup, task),
                 fmt::format("Accuracy against length factor, {} setup, {}", setup, task),
                 [&](const fs::path& svg) {
                   write_line_plot_svg(
                       svg, series,
                       {fmt::format("{} / {}: accuracy against length", setup, task),
                        "evaluation length / training length", "accuracy"});
                 });
    }

  // Deposit concentration against accuracy kept at 2x, one point per run.
  std::map<std::string, std::vector<std::pair<double, double>>> points;
  for (const auto& r : runs)
    if (r.has_ablation && std::isfinite(r.kept(2.0)))
      points[r.pe].push_back({r.layer1_share, r.kept(2.0)});
  html +=
      "<h3>Does a single-head deposit predict poor length generalization?</h3>\n<p>Layer-1 "
      "deposit concentration (the worst head's share of the layer's ablation drop) against the "
      "accuracy kept at 2x, one point per run.</p>\n";
  if (!points.empty())
    add_figure(html, out_dir, files, "length-deposit-vs-kept.svg",
               "Layer-1 deposit share against accuracy kept at 2x length, one point per run",
               [&](const fs::path& svg) {
                 write_scatter_svg(svg, points, "Layer-1 deposit share vs accuracy kept at 2x",
                                   "worst head's share of layer 1's drop",
                                   "accuracy at 2x / accuracy at 1x");
               });
  html += "<table><tr><th>runs</th><th>verdict</th><th>evidence</th></tr>\n";
  std::vector<std::pair<std::string, std::vector<LengthRun>>> groups{{"all", runs}};
  for (const auto& setup : data.setups) {
    std::vector<LengthRun> subset;
    for (const auto& r : runs)
      if (r.setup == setup) subset.push_back(r);
    if (!subset.empty()) groups.emplace_back(setup, subset);
  }
  std::string rule;
  for (const auto& [name, subset] : groups) {
    const auto v = deposit_length_verdict(subset);
    rule = v.rule;
    html += fmt::format("<tr><td>{}</td><td>{}</td><td>{}</td></tr>\n", html_escaped(name),
                        verdict_html(v.verdict), html_escaped(v.evidence));
  }
  html += "</table>\n<p class=rule>Rule (docs/CLAIMS.md): " + html_escaped(rule) + "</p>\n";

  // The probe table.
  bool any_probe = false;
  for (const auto& r : runs) any_probe |= is_probe(r.task);
  if (!any_probe) return html;
  html +=
      "<h2 id=\"probes\">Probe tasks</h2>\n<p>Accuracy at the training length (mean &plusmn; "
      "std over seeds), the accuracy kept at 2x, and the seeds whose head ablation shows a "
      "single-head deposit in any layer (the deposit rule, docs/ANALYSIS.md). recall: content, "
      "relational; first: absolute position; order: relative order; offset: content selected "
      "by relative position.</p>\n";
  for (const auto& setup : data.setups) {
    std::vector<std::string> probe_tasks, pes;
    for (const auto& t : task_names())
      for (const auto& r : runs)
        if (r.setup == setup && r.task == t && is_probe(t)) {
          if (std::find(probe_tasks.begin(), probe_tasks.end(), t) == probe_tasks.end())
            probe_tasks.push_back(t);
        }
    for (const auto& r : runs)
      if (r.setup == setup && is_probe(r.task) &&
          std::find(pes.begin(), pes.end(), r.pe) == pes.end())
        pes.push_back(r.pe);
    if (probe_tasks.empty()) continue;
    html += fmt::format("<h3>{}</h3>\n<table><tr><th>PE</th>", html_escaped(setup));
    for (const auto& t : probe_tasks) html += fmt::format("<th>{}</th>", t);
    html += "</tr>\n";
    for (const auto& pe : pes) {
      html += fmt::format("<tr><td>{}</td>", html_escaped(pe));
      for (const auto& t : probe_tasks) {
        std::vector<double> acc, k2;
        int64_t deposit = 0, ablated = 0;
        for (const auto& r : runs) {
          if (r.setup != setup || r.pe != pe || r.task != t || r.lengths.points.empty()) continue;
          acc.push_back(r.lengths.points.front().accuracy);
          k2.push_back(r.kept(2.0));
          ablated += r.has_ablation;
          deposit += r.any_single_head;
        }
        html += fmt::format("<td class=num>{}<br>kept 2x {}<br>deposit {}/{}</td>", mean_std(acc),
                            mean_std(k2), deposit, ablated);
      }
      html += "</tr>\n";
    }
    html += "</table>\n";
  }
  return html;
}

}  // namespace pelab
