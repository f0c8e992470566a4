#include "report/html.h"

#include <fmt/chrono.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <functional>
#include <map>
#include <set>

#include "report/length_section.h"
#include "report/paper_numbers.h"
#include "report/report_figures.h"
#include "report/zoo_section.h"
#include "train/checkpoint.h"

namespace pelab {
namespace fs = std::filesystem;

std::string html_escaped(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

namespace {

// Every PE the report knows, in the paper's order: the main six, then RoPE + abs and MLA.
const std::vector<std::string> kReportPes = {"nope",  "sinusoidal", "learned",  "relative",
                                             "alibi", "rope",       "rope_abs", "mla"};

constexpr const char* kStyle = R"(
body { font-family: sans-serif; max-width: 1200px; margin: 2em auto; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.92em; }
th, td { border: 1px solid #ccc; padding: 4px 8px; vertical-align: top; text-align: left; }
th { background: #f2f2f2; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.verdict { font-weight: bold; padding: 2px 6px; border-radius: 4px; white-space: nowrap; }
.holds { background: #c8f0c8; } .does-not-hold { background: #f6c6c6; }
.mixed { background: #f8e7a8; } .not-measured { background: #e4e4e4; color: #555; }
.rule { font-size: 0.85em; color: #444; }
pre { background: #f7f7f7; padding: 0.5em; overflow-x: auto; font-size: 0.8em; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
.missing { color: #8a4b00; }
)";

std::string number(double v, int digits = 3) {
  return std::isfinite(v) ? fmt::format("{:.{}f}", v, digits) : "&ndash;";
}

std::string stats_text(const SeedStats& s) {
  if (!s.measured()) return "<span class=\"missing\">not measured</span>";
  return fmt::format("{} &plusmn; {} <small>[{}&ndash;{}, n={}]</small>", number(s.mean),
                     number(s.std), number(s.min), number(s.max), s.n);
}

std::string verdict_badge(Verdict v) {
  std::string cls = verdict_name(v);
  std::replace(cls.begin(), cls.end(), ' ', '-');
  return fmt::format("<span class=\"verdict {}\">{}</span>", cls, verdict_name(v));
}

std::string slug(const std::string& text) {
  std::string out;
  for (char c : text) out += std::isalnum(static_cast<unsigned char>(c)) ? c : '-';
  return out;
}

// Assembles the page; figures are drawn on the way and a failure becomes a note on the page.
class PageBuilder {
 public:
  PageBuilder(const fs::path& dir, ReportFiles& files) : dir_(dir), files_(files) {}
  std::string html;

  void figure(const std::string& file, const std::string& caption,
              const std::function<void(const fs::path&)>& draw) {
    try {
      draw(dir_ / file);
      files_.figures.push_back(dir_ / file);
      html += fmt::format(
          "<figure><img src=\"{0}\" alt=\"{1}\"><figcaption>{1}</figcaption>"
          "</figure>\n",
          html_escaped(file), html_escaped(caption));
    } catch (const std::exception& e) {
      files_.figure_errors.push_back(file + ": " + e.what());
      html += fmt::format("<p class=\"missing\">Figure {} not drawn: {}</p>\n", html_escaped(file),
                          html_escaped(e.what()));
    }
  }

 private:
  fs::path dir_;
  ReportFiles& files_;
};

void overview_section(PageBuilder& page, const ReportData& data) {
  const std::tm now =
      fmt::gmtime(std::chrono::system_clock::to_time_t(std::chrono::system_clock::now()));
  page.html += fmt::format(
      "<h1>pelab report: scale <code>{}</code></h1>\n<p>Store <code>{}</code>, written {:%Y-%m-%d "
      "%H:%M:%S} UTC. Setups: {}. <em>faithful</em> = the authors' code with its quirks; "
      "<em>standard</em> = padding masks, keys/values from the residual stream, standard ALiBi "
      "slopes, test-set ablation (PAPER.md section 5). Layers are numbered from 1 as in the "
      "paper.</p>\n",
      html_escaped(data.scale), html_escaped(data.store_path.string()), now,
      html_escaped(fmt::format("{}", fmt::join(data.setups, ", "))));
  page.html +=
      "<h2>Runs and timings</h2>\n<table><tr><th>setup</th><th>runs</th><th>finished"
      "</th><th>failed</th><th>unfinished</th><th>training time</th><th>runs per "
      "experiment</th></tr>\n";
  for (const auto& s : data.setup_summaries) {
    std::vector<std::string> experiments;
    for (const auto& [experiment, n] : s.runs_by_experiment)
      experiments.push_back(fmt::format("{} {}", experiment.empty() ? "(none)" : experiment, n));
    page.html += fmt::format(
        "<tr><td>{}</td><td class=num>{}</td><td class=num>{}</td><td class=num>{}</td><td "
        "class=num>{}</td><td class=num>{:.1f} min</td><td>{}</td></tr>\n",
        html_escaped(s.setup), s.runs, s.finished, s.failed, s.unfinished, s.train_seconds / 60,
        html_escaped(fmt::format("{}", fmt::join(experiments, ", "))));
  }
  page.html += "</table>\n";
  for (const auto& s : data.setup_summaries)
    page.html += fmt::format(
        "<details><summary>Configuration of the {} setup (a main RoPE run; sweeps vary pe, "
        "task, seed and rotary heads)</summary><pre>{}</pre></details>\n",
        html_escaped(s.setup), html_escaped(s.config_toml));
  if (!data.warnings.empty()) {
    page.html += "<h3>Warnings</h3><ul>\n";
    for (const auto& w : data.warnings) page.html += "<li>" + html_escaped(w) + "</li>\n";
    page.html += "</ul>\n";
  }
}

void claims_section(PageBuilder& page, const ReportData& data,
                    const std::vector<ClaimVerdict>& claims) {
  page.html +=
      "<h2 id=\"claims\">Claims (PAPER.md section 6)</h2>\n<p>Each claim of the study, "
      "split into checkable statements, with the rule that decides its verdict and the "
      "numbers the rule read (docs/CLAIMS.md). &ldquo;Clearly beats&rdquo; means the "
      "difference of means exceeds max(0.02, std + std) over seeds. Every verdict comes from "
      "the runs of scale <code>" +
      html_escaped(data.scale) +
      "</code>; the last column holds the paper's numbers (PAPER.md section 7).</p>\n";
  page.html += "<table class=\"claims\"><tr><th>claim</th><th>rule</th>";
  for (const auto& setup : data.setups)
    page.html += "<th>" + html_escaped(setup) + " (" + html_escaped(data.scale) + ")</th>";
  page.html += "<th>paper</th></tr>\n";
  std::vector<std::string> order;
  std::map<std::string, std::map<std::string, const ClaimVerdict*>> by_id;
  for (const auto& c : claims) {
    if (!by_id.count(c.id)) order.push_back(c.id);
    by_id[c.id][c.setup] = &c;
  }
  for (const auto& id : order) {
    const ClaimVerdict& first = *by_id[id].begin()->second;
    page.html += fmt::format("<tr id=\"claim-{}\"><td>{}</td><td class=\"rule\">{}</td>",
                             html_escaped(id), html_escaped(first.claim), html_escaped(first.rule));
    for (const auto& setup : data.setups) {
      const auto it = by_id[id].find(setup);
      if (it == by_id[id].end()) {
        page.html += "<td>" + verdict_badge(Verdict::kNotMeasured) + "</td>";
        continue;
      }
      page.html += fmt::format(
          "<td>{}<details><summary>evidence</summary><pre>{}</pre></details></td>",
          verdict_badge(it->second->verdict), html_escaped(it->second->evidence.dump(1)));
    }
    page.html += fmt::format("<td class=\"rule\">{}</td></tr>\n",
                             html_escaped(paper_for_claim(id).value("text", std::string())));
  }
  page.html += "</table>\n";
}

void accuracy_section(PageBuilder& page, const ReportData& data) {
  page.html +=
      "<h2>Accuracy</h2>\n<p>Final test accuracy, mean &plusmn; std over seeds "
      "[min&ndash;max, n seeds]; below it the mean test accuracy over all epochs (area "
      "under the learning curve) and the training samples until the test accuracy first "
      "reached 0.9 x the run's own final accuracy (the rules' measure of speed). "
      "<em>not converged</em>: runs that stopped at the train.epochs ceiling rather than on a "
      "validation plateau. The <em>paper</em> column quotes PAPER.md section 7 (its shape: 6 "
      "layers, 16 heads, 70 distance labels).</p>\n<table><tr><th>PE</th><th>task</th>";
  for (const auto& setup : data.setups) page.html += "<th>" + html_escaped(setup) + "</th>";
  page.html += "<th>paper</th></tr>\n";
  for (const auto& task : {kTask1, kTask2}) {
    std::string row = fmt::format("<tr><td><em>length only</em></td><td>{}</td>", task);
    bool any = false;
    for (const auto& setup : data.setups) {
      const Cell* c = nullptr;
      for (const auto& cell : data.cells)
        if (cell.setup == setup && cell.task == task && std::isfinite(cell.length_only_accuracy))
          c = &cell;
      any |= c != nullptr;
      row += c ? fmt::format("<td class=num>{} <small>(chance {})</small></td>",
                             number(c->length_only_accuracy), number(c->chance()))
               : "<td class=missing>&ndash;</td>";
    }
    if (any)
      page.html += row + fmt::format("<td class=num>{}</td></tr>\n",
                                     task == std::string(kTask1) ? "0.054" : "0.0099");
  }
  for (const auto& pe : kReportPes)
    for (const auto& task : {kTask1, kTask2}) {
      std::string row = fmt::format("<tr><td>{}</td><td>{}</td>", pe, task);
      bool any = false;
      for (const auto& setup : data.setups) {
        const Cell* c = data.find(setup, pe, task);
        any |= c != nullptr;
        row += c ? fmt::format(
                       "<td class=num>{}<br><small>curve {}</small><br><small>samples to 0.9 x "
                       "final {}</small>{}{}</td>",
                       stats_text(c->final_accuracy), stats_text(c->curve_accuracy),
                       stats_text(c->samples_to_share),
                       c->ceiling_runs()
                           ? fmt::format("<br><small class=missing>not converged: {} of {} "
                                         "runs hit the ceiling</small>",
                                         c->ceiling_runs(), c->stop_reasons.size())
                           : "",
                       c->unfinished_runs
                           ? fmt::format("<br><small class=missing>{} unfinished</small>",
                                         c->unfinished_runs)
                           : "")
                 : "<td class=\"missing\">not measured</td>";
      }
      const PaperAccuracy* paper = paper_accuracy(pe, task, -1, 16);
      if (any)
        page.html += row +
                     (paper ? fmt::format("<td class=num>{} <small>({})</small></td>",
                                          number(paper->accuracy, 4), html_escaped(paper->source))
                            : std::string("<td>&ndash;</td>")) +
                     "</tr>\n";
    }
  page.html += "</table>\n";
  for (const auto& setup : data.setups)
    page.figure(
        "accuracy-" + slug(setup) + ".svg", "Final test accuracy, " + setup + " setup",
        [&](const fs::path& svg) { write_accuracy_bars_svg(svg, data, setup, kReportPes); });
  page.html += "<h2>Training curves</h2>\n";
  for (const auto& setup : data.setups)
    for (const auto& task : {kTask1, kTask2}) {
      bool any = false;
      for (const auto& pe : kReportPes) {
        const Cell* c = data.find(setup, pe, task);
        any |= c && !c->curve_mean.empty();
      }
      if (!any) {
        page.html += fmt::format("<p class=missing>No training curves for {} / {}.</p>\n",
                                 html_escaped(setup), task);
        continue;
      }
      page.figure(fmt::format("curves-{}-{}.svg", slug(setup), task),
                  fmt::format("Test accuracy per epoch, {} setup, {}", setup, task),
                  [&](const fs::path& svg) {
                    write_training_curves_svg(svg, data, setup, task, kReportPes);
                  });
    }
}

void ablation_section(PageBuilder& page, const ReportData& data) {
  page.html +=
      "<h2>Head ablation and deposits</h2>\n<p>Accuracy with one head removed (value "
      "ablation), first seed; the table summarises every seed by the deposit rule "
      "(docs/ANALYSIS.md): a layer is a single-head deposit when its worst head costs "
      ">= 0.25 x baseline and every other head <= 0.25 x that.</p>\n";
  bool any = false;
  for (const auto& setup : data.setups)
    for (const auto& pe : kReportPes)
      for (const auto& task : {kTask1, kTask2}) {
        const Cell* c = data.find(setup, pe, task);
        if (!c || c->ablations.empty()) continue;
        any = true;
        page.html += fmt::format("<h3>{} / {} / {}</h3>\n", html_escaped(setup), pe, task);
        const HeadAblation& first = c->ablations.front();
        page.figure(fmt::format("ablation-{}-{}-{}.svg", slug(setup), pe, task),
                    fmt::format("{} on {}, seed {}, {} setup", pe, task, first.seed, setup),
                    [&](const fs::path& svg) { write_ablation_svg(svg, *c, first); });
        page.html +=
            "<table><tr><th>seed</th><th>baseline</th><th>layer</th><th>worst head</th>"
            "<th>drop</th><th>share</th><th>single-head deposit</th></tr>\n";
        for (const auto& a : c->ablations)
          for (const auto& d : a.deposits)
            page.html += fmt::format(
                "<tr><td class=num>{}</td><td class=num>{}</td><td class=num>{}</td><td "
                "class=num>{}</td><td class=num>{}</td><td class=num>{}</td><td>{}</td></tr>\n",
                a.seed, number(a.baseline_accuracy), d.layer + 1, d.worst_head, number(d.drop),
                number(d.share, 2), d.single_head_deposit ? "<b>yes</b>" : "no");
        page.html += "</table>\n";
      }
  if (!any) page.html += "<p class=missing>No head ablations: not measured.</p>\n";
}

void rotary_heads_section(PageBuilder& page, const ReportData& data) {
  page.html += "<h2>RoPE on the first k heads</h2>\n";
  if (!has_rotary_heads(data)) {
    page.html += "<p class=missing>No partial-RoPE runs: not measured.</p>\n";
    return;
  }
  page.figure("rotary-heads.svg", "Task 1 accuracy against the number of rotary heads",
              [&](const fs::path& svg) { write_rotary_heads_svg(svg, data); });
  page.html +=
      "<table><tr><th>setup</th><th>k</th><th>final accuracy</th><th>paper (k of 16 "
      "heads)</th></tr>\n";
  for (const auto& c : data.cells)
    if (c.pe == "rope" && c.task == kTask1) {
      const PaperAccuracy* paper = paper_accuracy(c.pe, c.task, c.rotary_heads, c.n_heads);
      page.html += fmt::format(
          "<tr><td>{}</td><td class=num>{}</td><td class=num>{}</td><td class=num>{}</td></tr>\n",
          html_escaped(c.setup),
          c.rotary_heads < 0 ? std::string("all") : std::to_string(c.rotary_heads),
          stats_text(c.final_accuracy),
          paper ? number(paper->accuracy) + " <small>(" + html_escaped(paper->source) + ")</small>"
                : std::string("&ndash;"));
    }
  page.html += "</table>\n";
}

void spectra_section(PageBuilder& page, const ReportData& data) {
  page.html +=
      "<h2>Spectra, Schur and Weyl checks</h2>\n<p>Kernel studies use random PSD "
      "content Gram matrices A; trained studies use a run's content Gram matrices. "
      "Schur (RoPE family, A o T): every eigenvalue stays in [lambda_min(A) min T_ii, "
      "lambda_max(A) max T_ii]. Weyl (additive, A + B). Contraction ratio = "
      "kappa(coupled) / kappa(A); below 1 the coupling contracts.</p>\n";
  if (data.spectra.empty()) {
    page.html += "<p class=missing>No spectra in the store: not measured.</p>\n";
    return;
  }
  page.html +=
      "<table><tr><th>setup</th><th>PE</th><th>source</th><th>kernels</th><th>kernel "
      "condition numbers</th><th>checks</th><th>bounds hold</th><th>contract (&lt;1)"
      "</th><th>median ratio</th><th>max ratio</th></tr>\n";
  for (const auto& s : data.spectra) {
    std::string conditions;
    for (size_t i = 0; i < s.kernels.size() && i < 4; ++i)
      conditions += fmt::format("{}{}: {}", i ? "; " : "", s.kernels[i].name,
                                s.kernels[i].condition_number
                                    ? fmt::format("{:.3g}", *s.kernels[i].condition_number)
                                    : "singular");
    std::vector<double> ratios;
    int64_t holding = 0;
    for (const auto& c : s.checks) {
      holding += c.bound_holds;
      if (c.contraction_ratio) ratios.push_back(*c.contraction_ratio);
    }
    std::sort(ratios.begin(), ratios.end());
    const auto contract = std::count_if(ratios.begin(), ratios.end(),
                                        [](double r) { return r <= 1 + kSpectralTolerance; });
    page.html += fmt::format(
        "<tr><td>{}</td><td>{}</td><td>{}</td><td class=num>{}</td><td>{}</td><td class=num>{}"
        "</td><td class=num>{}</td><td class=num>{}/{}</td><td class=num>{}</td><td class=num>{}"
        "</td></tr>\n",
        html_escaped(s.setup), html_escaped(s.pe),
        s.run_id ? fmt::format("run {}", *s.run_id) : std::string("kernel"), s.kernels.size(),
        html_escaped(conditions), s.checks.size(), holding, contract, ratios.size(),
        ratios.empty() ? "&ndash;" : fmt::format("{:.3g}", ratios[ratios.size() / 2]),
        ratios.empty() ? "&ndash;" : fmt::format("{:.3g}", ratios.back()));
  }
  page.html += "</table>\n";
  for (const auto& setup : data.setups) {
    if (has_contraction_ratios(data, setup))
      page.figure("contraction-" + slug(setup) + ".svg", "Contraction ratios, " + setup,
                  [&](const fs::path& svg) { write_contraction_ratios_svg(svg, data, setup); });
    for (const auto& s : data.spectra)
      if (s.setup == setup && !s.run_id && !s.kernels.empty())
        page.figure(fmt::format("kernels-{}-{}.svg", slug(setup), slug(s.pe)),
                    fmt::format("{} kernel eigenvalues, {} setup", s.pe, setup),
                    [&](const fs::path& svg) { write_kernel_eigenvalues_svg(svg, s); });
  }
  bool logits = false;
  for (const auto& s : data.spectra) logits |= !s.logit_spectra.empty();
  if (!logits) return;
  page.html +=
      "<h3>Trained logit spectra</h3>\n<table><tr><th>setup</th><th>PE</th><th>run</th>"
      "<th>layer</th><th>head</th><th>mean log10 condition</th><th>mean effective rank"
      "</th><th>mean top share</th></tr>\n";
  for (const auto& s : data.spectra)
    for (const auto& l : s.logit_spectra)
      page.html += fmt::format(
          "<tr><td>{}</td><td>{}</td><td class=num>{}</td><td class=num>{}</td><td class=num>{}"
          "</td><td class=num>{}</td><td class=num>{}</td><td class=num>{}</td></tr>\n",
          html_escaped(s.setup), html_escaped(s.pe), s.run_id.value_or(0), l.layer + 1, l.head,
          number(l.mean_log10_condition, 2), number(l.mean_effective_rank, 2),
          number(l.mean_top_share, 3));
  page.html += "</table>\n";
}

void removal_section(PageBuilder& page, const ReportData& data) {
  page.html +=
      "<h2>Positional-component removal</h2>\n<p>Accuracy after removing p_i (the "
      "position's component) from the residual stream at one layer, against removing "
      "random vectors of the same norm (mean &plusmn; std).</p>\n";
  bool any = false;
  for (const auto& c : data.cells) {
    if (c.removals.empty()) continue;
    any = true;
    page.html += fmt::format("<h3>{} / {} / {}</h3>\n", html_escaped(c.setup), c.pe, c.task);
    page.figure(fmt::format("removal-{}-{}-{}.svg", slug(c.setup), c.pe, c.task),
                fmt::format("p_i vs random removal, {} on {}, {} setup", c.pe, c.task, c.setup),
                [&](const fs::path& svg) { write_removal_svg(svg, c); });
    page.html +=
        "<table><tr><th>seed</th><th>baseline</th><th>layer</th><th>without p_i</th>"
        "<th>without random (mean &plusmn; std)</th></tr>\n";
    for (const auto& r : c.removals)
      for (const auto& l : r.layers)
        page.html += fmt::format(
            "<tr><td class=num>{}</td><td class=num>{}</td><td class=num>{}</td><td class=num>{}"
            "</td><td class=num>{} &plusmn; {}</td></tr>\n",
            r.seed, number(r.baseline_accuracy), l.layer + 1, number(l.accuracy_without_position),
            number(l.random_mean), number(l.random_std));
    page.html += "</table>\n";
  }
  if (!any) page.html += "<p class=missing>No removal results: not measured.</p>\n";
}

}  // namespace

ReportFiles write_report(const ReportData& data, const std::vector<ClaimVerdict>& claims,
                         const fs::path& out_dir) {
  fs::create_directories(out_dir);
  ReportFiles files;
  PageBuilder page(out_dir, files);
  overview_section(page, data);
  claims_section(page, data, claims);
  accuracy_section(page, data);
  ablation_section(page, data);
  rotary_heads_section(page, data);
  spectra_section(page, data);
  removal_section(page, data);
  page.html += zoo_section_html(data, out_dir, files);
  page.html += length_sections_html(data, load_length_runs(data), out_dir, files);

  const std::string html = fmt::format(
      "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>pelab "
      "report: {}</title>\n<style>{}</style>\n</head>\n<body>\n{}</body>\n</html>\n",
      html_escaped(data.scale), kStyle, page.html);
  files.index_html = out_dir / "index.html";
  files.claims_json = out_dir / "claims.json";
  write_file_atomically(files.claims_json, claims_to_json(claims) + "\n");
  write_file_atomically(files.index_html, html);
  return files;
}

}  // namespace pelab
